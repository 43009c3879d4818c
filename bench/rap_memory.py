"""Peak memory of RAP's text-conditioned evaluation: texts x videos of 12 frames on ViT-B-16 shapes.

    python bench/rap_memory.py                      # 100x100, 200x200, 400x400 (texts x videos)
    python bench/rap_memory.py --sizes 1000x1000    # the issue's scale (about 5 GB of input features)

Each size runs in a fresh process with random features of ViT-B-16's shapes (embedding width 512, 14 x 14 =
196 patches per frame, 12 frames): frame and patch embeddings as `encode_split` keeps them, every text scored
against every video by `vtrlab.train.evaluate.score_videos` (the evaluation's own code). It prints the memory
of the inputs, the peak during scoring (CPU: peak RSS; CUDA: peak allocated), the difference (the working
memory, bounded by `vtrlab.model.methods.rap.PAIR_CHUNK` and `VIDEO_CHUNK`), the time, and what one call of
the former per-pair implementation materialised (16 texts x videos x frames x patches x width x 4 bytes for
the repeated patches alone).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "platform"))

FRAMES, PATCHES, WIDTH = 12, 196, 512  # ViT-B-16: 224 px / 16 px patches, 512-wide projected embeddings
FORMER_TEXT_CHUNK = 16  # texts per call in the former evaluation, which repeated the patches per pair


def _rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def measure(texts: int, videos: int, device: str) -> dict:
    """Run in the child process: build the inputs, score, report memory and time."""
    import torch
    import torch.nn.functional as F

    from vtrlab.model.factory import create_model
    from vtrlab.model.methods import rap
    from vtrlab.train.evaluate import VideoEmbeddings, score_videos

    torch.manual_seed(0)
    encoder = create_model("rap", "vtr-tiny", knobs={"selection": "text-conditioned", "max_frames": FRAMES})
    encoder.video_head = rap.RapVideoHead(WIDTH, PATCHES, rap.RapKnobs(selection="text-conditioned")).eval()
    encoder = encoder.to(device)
    baseline = _rss_mb()
    mask = torch.ones(videos, FRAMES, dtype=torch.bool, device=device)
    mask[::3, 8:] = False  # a third of the clips are shorter
    embeddings = VideoEmbeddings(
        frame_emb=torch.randn(videos, FRAMES, WIDTH, device=device),
        frame_mask=mask,
        patch_emb=torch.randn(videos, FRAMES, PATCHES, WIDTH, device=device),
    )
    text = F.normalize(torch.randn(texts, WIDTH, device=device), dim=-1)
    inputs_mb = sum(t.numel() * t.element_size() for t in [*embeddings.tensors(), text]) / 2**20
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated() / 2**20
    else:
        before = _rss_mb()
    started = time.perf_counter()
    scores = score_videos(encoder, text, embeddings)
    if device == "cuda":
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB -> MB
    seconds = time.perf_counter() - started
    assert scores.shape == (texts, videos) and bool(torch.isfinite(scores).all())
    per_pair_gb = FORMER_TEXT_CHUNK * videos * FRAMES * PATCHES * WIDTH * 4 / 2**30
    return {
        "texts": texts,
        "videos": videos,
        "device": device,
        "inputs_mb": inputs_mb,
        "before_mb": before - (baseline if device != "cuda" else 0),
        "peak_mb": peak - (baseline if device != "cuda" else 0),
        "working_mb": peak - before,
        "seconds": seconds,
        "pair_chunk": rap.PAIR_CHUNK,
        "former_one_call_gb": per_pair_gb,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["100x100", "200x200", "400x400"], help="TEXTSxVIDEOS")
    parser.add_argument("--device", default="cuda" if _cuda() else "cpu")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        texts, videos = (int(n) for n in args.child.split("x"))
        print(json.dumps(measure(texts, videos, args.device)))
        return
    print(f"RAP text-conditioned scoring, ViT-B-16 shapes ({FRAMES} frames, {PATCHES} patches, width {WIDTH})")
    header = (
        f"{'texts x videos':>15} {'inputs MB':>10} {'peak MB':>9} {'working MB':>11} {'seconds':>8} "
        f"{'former 1 call GB':>17}"
    )
    print(header)
    for size in args.sizes:
        out = subprocess.run(
            [sys.executable, __file__, "--child", size, "--device", args.device],
            capture_output=True,
            text=True,
            check=True,
        )
        row = json.loads(out.stdout.strip().splitlines()[-1])
        print(
            f"{size:>15} {row['inputs_mb']:>10.0f} {row['peak_mb']:>9.0f} {row['working_mb']:>11.0f} "
            f"{row['seconds']:>8.1f} {row['former_one_call_gb']:>17.1f}"
        )
    print(f"(peak and working memory are {'peak allocated' if args.device == 'cuda' else 'peak RSS'} above the")
    print(" process after imports; working = peak - after the inputs; PAIR_CHUNK = pairs pooled at once)")


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


if __name__ == "__main__":
    main()
