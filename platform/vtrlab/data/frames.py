"""Which frames of a clip a build stores and a loader shows, as CLIP4Clip samples them (pure functions shared
by the build, the loaders and the MLflow model): of the ``n`` frames sampled at 1 fps, CLIP4Clip's ``F`` are
``np.linspace(0, n - 1, F, dtype=int)`` (truncating; all ``n`` when ``n <= F``, the loader pads and masks);
a build may store extra 1-fps frames for optional training jitter (:func:`stored_positions`,
:func:`select_frames`). Decoding lives in :mod:`vtrlab.data.video`."""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from itertools import pairwise

import numpy as np

SAMPLING = "clip4clip"  # the sampling rule's name, for manifests


def clip4clip_indices(n: int, num_frames: int) -> np.ndarray:
    """CLIP4Clip's frames of a clip with ``n`` 1-fps frames: ``np.linspace(0, n - 1, num_frames, dtype=int)``
    when ``n > num_frames`` (truncated, not rounded), else ``arange(n)``. int64, strictly increasing."""
    if n < 0 or num_frames < 1:
        raise ValueError(f"n {n}, num_frames {num_frames}: expected n >= 0 and num_frames >= 1")
    if n <= num_frames:
        return np.arange(n, dtype=np.int64)
    return np.linspace(0, n - 1, num=num_frames, dtype=int).astype(np.int64)


def stored_positions(n: int, eval_frames: int, stored_frames: int | None = None) -> np.ndarray:
    """Which of the ``n`` 1-fps frames a build stores (sorted int64): CLIP4Clip's ``eval_frames`` exactly;
    with ``stored_frames`` > ``eval_frames`` (extra frames for training jitter) ``min(n, stored_frames)``
    frames: the evaluation frames, then one extra at a time in the middle of the widest gap between the
    frames chosen so far (the earlier gap on ties)."""
    pos = clip4clip_indices(n, eval_frames)
    if stored_frames is None or stored_frames <= eval_frames:
        return pos
    if n <= stored_frames:
        return np.arange(n, dtype=np.int64)
    gaps = [(-(b - a), a, b) for a, b in pairwise(pos.tolist())]
    heapq.heapify(gaps)
    extra = []
    for _ in range(stored_frames - len(pos)):
        width, a, b = heapq.heappop(gaps)
        if -width < 2:
            break
        mid = (a + b) // 2
        extra.append(mid)
        heapq.heappush(gaps, (-(mid - a), a, mid))
        heapq.heappush(gaps, (-(b - mid), mid, b))
    return np.union1d(pos, np.asarray(extra, dtype=np.int64)).astype(np.int64)


def _nearest(positions: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Index into sorted ``positions`` of the nearest position to each of ``wanted`` (ties: the earlier)."""
    hi = np.clip(np.searchsorted(positions, wanted), 0, len(positions) - 1)
    lo = np.clip(hi - 1, 0, len(positions) - 1)
    return np.where(np.abs(positions[lo] - wanted) <= np.abs(positions[hi] - wanted), lo, hi)


def segment_bounds(n: int, num_frames: int) -> np.ndarray:
    """Jitter segments of CLIP4Clip's frames ``e = clip4clip_indices(n, num_frames)``: segment ``i`` is the
    1-fps positions ``[b[i], b[i + 1])`` nearest to ``e[i]`` (``b[i] = ceil((e[i-1] + e[i]) / 2)``,
    ``b[0] = 0``, ``b[-1] = n``), so each segment holds its evaluation frame. int64 [len(e) + 1]."""
    e = clip4clip_indices(n, num_frames)
    mid = (e[:-1] + e[1:] + 1) // 2
    return np.concatenate([[0], mid, [n]]).astype(np.int64)


def has_clip4clip_frames(positions: Sequence[int], n: int, num_frames: int) -> bool:
    """True when the stored ``positions`` hold all of CLIP4Clip's ``num_frames`` frames of the clip."""
    return bool(np.isin(clip4clip_indices(n, num_frames), np.asarray(positions)).all())


def select_frames(
    positions: Sequence[int], n: int, num_frames: int, rng: np.random.Generator | None = None
) -> np.ndarray:
    """Indices into a sample's stored frames (stored at the sorted 1-fps ``positions`` of ``n``) for a clip
    of ``num_frames`` frames, ``min(n, num_frames)`` long.

    ``rng`` None (evaluation; training by default): CLIP4Clip's frames, :func:`clip4clip_indices`. Exact when
    stored (:func:`has_clip4clip_frames`; always for the build's frame count); otherwise the nearest stored
    frame to each (shards built for another frame count -- the caller should say so).
    ``rng`` given (training jitter, an option): frame ``i`` is a uniformly random stored frame of segment
    ``i`` (:func:`segment_bounds`), or the frame chosen without ``rng`` when the segment has none stored."""
    pos = np.asarray(positions, dtype=np.int64)
    if pos.ndim != 1 or len(pos) == 0 or (np.diff(pos) <= 0).any() or pos[0] < 0 or pos[-1] >= n:
        raise ValueError(f"positions {pos.tolist()[:8]}...: expected strictly increasing values in [0, {n})")
    want = clip4clip_indices(n, num_frames)
    out = _nearest(pos, want)
    if rng is None:
        return out
    bounds = segment_bounds(n, num_frames)
    lo, hi = np.searchsorted(pos, bounds[:-1]), np.searchsorted(pos, bounds[1:])
    count = hi - lo
    draw = lo + np.floor(rng.random(len(want)) * np.maximum(count, 1)).astype(np.int64)
    return np.where(count > 0, draw, out)


def frames_manifest(num_frames: int, stored_frames: int | None, fps: float, size: int) -> dict:
    """The manifest's ``frames`` entry: how a build sampled and what it stored (each sample's JSON holds
    its own :meth:`DecodedClip.sampling_meta`)."""
    jitter = stored_frames is not None and stored_frames > num_frames
    return {
        "sampling": SAMPLING,
        "fps": fps,
        "span": "one frame per mark start, start + 1/fps, ..., end (end inclusive), the first frame at or after it",
        "selection": "linspace(0, n - 1, eval_frames, dtype=int) of the n sampled frames; all when n <= eval_frames",
        "eval_frames": num_frames,
        "stored": "jitter" if jitter else "exact",
        "stored_frames": stored_frames if jitter else num_frames,
        "extra_frames": "middles of the widest gaps, up to stored_frames" if jitter else None,
        "image_size": size,
        "resize": "shorter side to image_size (bicubic, torchvision Resize), centre crop (CenterCrop)",
        "sample_field": "meta.sampling: n, positions, eval_index, times",
    }
