"""Peak memory of one build task's decoding, short clip vs long clip (issue 11, item 7).

    python bench/build_memory.py                         # 30 s and 300 s at 1280x720, 2 fps
    python bench/build_memory.py --seconds 30,300,900 --fps 4 --json out/build_memory.json

Encodes synthetic 720p H.264 clips with PyAV into a temporary folder (a low frame rate keeps encoding and
decoding quick on small machines; what the former decoder kept grows with the 1 fps frames, one per second
whatever the source rate), then decodes each clip in a fresh process with one decoder thread, as a build's
Ray task does, for ActivityNet's frame counts (32 evaluation frames, 48 stored, 224 px):

- ``decode_clip``: vtrlab's decoder (packet scan, then only the stored frames converted, each resized at once);
- ``former``: the former decoder's strategy, every 1 fps frame kept as a full-resolution image until the clip
  is done, then sampled and resized (reimplemented here as the baseline).

It prints, per clip and decoder, the peak RSS above the process's RSS after its imports and a one-frame
warm-up decode of the same file (codec libraries loaded), and the wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "platform"))

NUM_FRAMES, STORED_FRAMES, SIZE = 32, 48, 224  # ActivityNet's card: 32 frames per clip, 224 px


def encode_clip(path: Path, seconds: int, fps: int, width: int, height: int) -> Path:
    """A synthetic clip: a colour gradient that shifts each frame and a moving block (H.264, ultrafast)."""
    import av
    import numpy as np

    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([xx * 255 // width, yy * 255 // height, (xx + yy) * 255 // (width + height)], -1)
    base = base.astype(np.uint8)
    with av.open(str(path), "w") as c:
        st = c.add_stream("libx264", rate=fps, options={"preset": "ultrafast", "crf": "30"})
        st.width, st.height, st.pix_fmt = width, height, "yuv420p"
        n = seconds * fps
        for i in range(n):
            img = base + np.uint8(i % 256)
            x = (i * 7) % (width - 64)
            img[100:164, x : x + 64] = 255
            for pkt in st.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(pkt)
        for pkt in st.encode():
            c.mux(pkt)
    return path


def _rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def former_decode(path: str, max_frames: int, size: int):
    """The former strategy: every 1 fps frame kept as a full-resolution PIL image, sampled and resized at the end."""
    import math

    import av
    import numpy as np

    from vtrlab.data.video import _resize_crop

    picked = []
    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_count = 1
        tb, next_t = stream.time_base, 0.0
        for frame in container.decode(stream):
            t = float(frame.pts * tb)
            if t + 1e-6 < next_t:
                continue
            picked.append(frame.to_image())
            next_t = math.floor(t + 1e-6) + 1.0
    idx = np.linspace(0, len(picked) - 1, num=min(max_frames, len(picked))).round().astype(int)
    return np.stack([_resize_crop(picked[i], size) for i in idx])


def measure(path: str, decoder: str) -> dict:
    """Run in the child process."""
    import av

    from vtrlab.data.video import decode_clip

    with av.open(path) as c:  # warm-up: load the codec, decode one frame
        next(c.decode(c.streams.video[0]))
    baseline = _rss_mb()
    t0 = time.perf_counter()
    if decoder == "decode_clip":
        clip = decode_clip(path, num_frames=NUM_FRAMES, stored_frames=STORED_FRAMES, size=SIZE, threads=1)
        frames, n = clip.frames, clip.num_sampled
    else:
        frames = former_decode(path, STORED_FRAMES, SIZE)
        n = None
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {
        "decoder": decoder,
        "frames": len(frames),
        "one_fps_frames": n,
        "baseline_mb": round(baseline, 1),
        "peak_growth_mb": round(peak - baseline, 1),
        "stored_mb": round(frames.nbytes / 2**20, 1),
        "seconds": round(seconds, 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", default="30,300", help="clip lengths in seconds, comma-separated")
    ap.add_argument("--fps", type=int, default=2, help="source frame rate of the synthetic clips")
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=720)
    ap.add_argument("--decoders", default="decode_clip,former")
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--child", nargs=2, metavar=("PATH", "DECODER"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(measure(*args.child)))
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for secs in [int(s) for s in args.seconds.split(",")]:
            t0 = time.perf_counter()
            path = encode_clip(Path(tmp) / f"clip_{secs}s.mp4", secs, args.fps, args.width, args.height)
            enc = time.perf_counter() - t0
            mb = path.stat().st_size / 2**20
            print(f"# {secs} s clip, {args.width}x{args.height} @ {args.fps} fps: {mb:.1f} MB, encoded in {enc:.1f} s")
            for dec in args.decoders.split(","):
                out = subprocess.run(
                    [sys.executable, __file__, "--child", str(path), dec], capture_output=True, text=True, check=True
                )
                row = {"clip_seconds": secs, **json.loads(out.stdout.strip().splitlines()[-1])}
                rows.append(row)
    print(f"\n{'clip':>6} {'decoder':>12} {'1fps':>5} {'stored':>6} {'peak +MB':>9} {'frames MB':>9} {'time s':>7}")
    for r in rows:
        print(
            f"{r['clip_seconds']:>5}s {r['decoder']:>12} {r['one_fps_frames'] or '-':>5} {r['frames']:>6} "
            f"{r['peak_growth_mb']:>9.1f} {r['stored_mb']:>9.1f} {r['seconds']:>7.2f}"
        )
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
