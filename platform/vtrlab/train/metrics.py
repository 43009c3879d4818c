"""Retrieval metrics for a text-video similarity matrix (methods.md section 5).

``sim`` is ``[num_texts, num_videos]`` (higher = more similar) and ``text_to_video[i]`` is the
video that caption ``i`` describes. Single-caption benchmarks (MSR-VTT 1k-A, LSMDC) are the case
``num_texts == num_videos`` with ``text_to_video = arange``; multi-caption benchmarks (MSVD) have
one row per caption.

Ranks are 1-based and ties are pessimistic: an item that scores the same as the ground truth
is counted as ranked before it, so a constant similarity matrix gets the worst possible ranks,
never a free R@1.

Everything is vectorised; rows are processed in chunks so that the temporary boolean masks stay
around ``_CHUNK_ELEMENTS`` (4M) elements: a 100k x 1k float32 matrix (400 MB) is ranked
with about 0.1 GB of extra memory, in about 0.3 s on 2 CPU cores.
"""

from __future__ import annotations

import torch
from torch import Tensor

from vtrlab.errors import InputError
from vtrlab.train.metric_names import METRIC_KEYS
from vtrlab.train.metric_names import RECALL_AT as _RECALL_AT

__all__ = ["METRIC_KEYS", "metrics_from_ranks", "ranks_t2v", "ranks_v2t", "retrieval_metrics", "retrieval_ranks"]

_CHUNK_ELEMENTS = 1 << 22  # ~4M elements per temporary mask (and its int64 sum)


def _validate(sim: Tensor, text_to_video: Tensor) -> Tensor:
    """Check ``sim`` and ``text_to_video``; return ``text_to_video`` as int64 on ``sim``'s device."""
    if not isinstance(sim, Tensor):
        raise InputError(f"sim must be a torch.Tensor, got {type(sim).__name__}")
    if not isinstance(text_to_video, Tensor):
        raise InputError(f"text_to_video must be a torch.Tensor, got {type(text_to_video).__name__}")
    if sim.dim() != 2:
        raise InputError(f"sim must be 2-D [num_texts, num_videos], got shape {tuple(sim.shape)}")
    if not sim.is_floating_point():
        raise InputError(f"sim must be a floating-point tensor, got dtype {sim.dtype}")
    num_texts, num_videos = sim.shape
    if num_texts == 0 or num_videos == 0:
        raise InputError(f"sim is empty (shape {tuple(sim.shape)}): need at least one text and one video")
    if text_to_video.dim() != 1:
        raise InputError(f"text_to_video must be 1-D [num_texts], got shape {tuple(text_to_video.shape)}")
    if text_to_video.is_floating_point() or text_to_video.is_complex() or text_to_video.dtype == torch.bool:
        raise InputError(f"text_to_video must be an integer tensor, got dtype {text_to_video.dtype}")
    if text_to_video.numel() != num_texts:
        raise InputError(f"text_to_video has {text_to_video.numel()} entries but sim has {num_texts} rows (texts)")
    t2v = text_to_video.to(device=sim.device, dtype=torch.long)
    bad = (t2v < 0) | (t2v >= num_videos)
    if bool(bad.any()):
        first = int(bad.nonzero()[0, 0])
        raise InputError(
            f"text_to_video[{first}] = {int(t2v[first])} is out of range for {num_videos} videos "
            f"({int(bad.sum())} bad indices in all)"
        )
    rows = _rows_per_chunk(num_videos, None)
    nan_rows = torch.cat([sim[s : s + rows].isnan().any(dim=1) for s in range(0, num_texts, rows)])
    if bool(nan_rows.any()):
        where = nan_rows.nonzero().flatten()
        raise InputError(
            f"sim contains NaN in {where.numel()} row(s), first at row {int(where[0])}; "
            "retrieval ranks are undefined for NaN scores"
        )
    captions_per_video = torch.bincount(t2v, minlength=num_videos)
    orphans = (captions_per_video == 0).nonzero().flatten()
    if orphans.numel() > 0:
        shown = ", ".join(str(int(v)) for v in orphans[:10])
        more = f" (and {orphans.numel() - 10} more)" if orphans.numel() > 10 else ""
        raise InputError(
            f"every video needs at least one caption: {orphans.numel()} video(s) have none in "
            f"text_to_video: {shown}{more}"
        )
    return t2v


def _rows_per_chunk(num_videos: int, chunk_size: int | None) -> int:
    if chunk_size is not None:
        if chunk_size < 1:
            raise InputError(f"chunk_size must be >= 1, got {chunk_size}")
        return chunk_size
    return max(1, _CHUNK_ELEMENTS // num_videos)


def _ranks_t2v(sim: Tensor, t2v: Tensor, rows: int) -> Tensor:
    num_texts = sim.shape[0]
    ranks = torch.empty(num_texts, dtype=torch.long, device=sim.device)
    for start in range(0, num_texts, rows):
        block = sim[start : start + rows]
        gt = block.gather(1, t2v[start : start + rows, None])  # [chunk, 1]
        # ">=" counts the ground truth itself, so this is 1 + (other videos scoring >= gt).
        ranks[start : start + rows] = (block >= gt).sum(dim=1)
    return ranks


def _caption_group_max(sim: Tensor, t2v: Tensor, rows: int) -> Tensor:
    """``[num_videos (caption groups), num_videos]``: row ``g`` is, per video, the best score among the
    captions of video ``g`` (CLIP4Clip's ``tensor_video_to_text_sim`` before its transpose)."""
    num_texts, num_videos = sim.shape
    groups = torch.full((num_videos, num_videos), float("-inf"), dtype=sim.dtype, device=sim.device)
    for start in range(0, num_texts, rows):
        block = sim[start : start + rows]
        index = t2v[start : start + rows, None].expand(-1, num_videos)
        groups.scatter_reduce_(0, index, block, reduce="amax", include_self=True)
    return groups


def _ranks_v2t(sim: Tensor, t2v: Tensor, rows: int) -> Tensor:
    groups = _caption_group_max(sim, t2v, rows)  # [group, video]
    own = groups.diagonal()  # each video's best own caption
    # ">=" counts the own group itself, so this is 1 + (other groups scoring >= own).
    return (groups >= own[None, :]).sum(dim=0)


def ranks_t2v(sim: Tensor, text_to_video: Tensor, *, chunk_size: int | None = None) -> Tensor:
    """Text-to-video ranks: for each caption, the 1-based rank of its ground-truth video.

    ``rank[i] = 1 + #{videos j != text_to_video[i] : sim[i, j] >= sim[i, text_to_video[i]]}``
    (pessimistic ties). Returns an int64 tensor of length ``num_texts``. ``chunk_size`` is the
    number of rows per chunk (default: about 4M matrix elements per chunk).
    """
    t2v = _validate(sim, text_to_video)
    return _ranks_t2v(sim, t2v, _rows_per_chunk(sim.shape[1], chunk_size))


def ranks_v2t(sim: Tensor, text_to_video: Tensor, *, chunk_size: int | None = None) -> Tensor:
    """Video-to-text ranks: for each video, the 1-based rank of its own caption group among the
    caption groups of all videos (CLIP4Clip's multi-caption protocol, ``tensor_video_to_text_sim``).

    A group scores its best caption, ``g[u, v] = max_{i : text_to_video[i] = u} sim[i, v]``, and
    ``rank[v] = 1 + #{videos u != v : g[u, v] >= g[v, v]}`` (pessimistic ties). With one caption per
    video this is the transposed text-to-video ranking. Returns an int64 tensor of length
    ``num_videos``. Memory: one ``[num_videos, num_videos]`` matrix.
    """
    t2v = _validate(sim, text_to_video)
    return _ranks_v2t(sim, t2v, _rows_per_chunk(sim.shape[1], chunk_size))


def _median(values: Tensor) -> float:
    """NumPy-style median: the mean of the two middle values for an even count."""
    ordered = values.double().sort().values
    n = ordered.numel()
    mid = n // 2
    if n % 2:
        return float(ordered[mid])
    return float((ordered[mid - 1] + ordered[mid]) / 2)


def _summarise(ranks: Tensor, prefix: str) -> dict[str, float]:
    out = {f"{prefix}_R{k}": float((ranks <= k).double().mean() * 100.0) for k in _RECALL_AT}
    out[f"{prefix}_MdR"] = _median(ranks)
    out[f"{prefix}_MnR"] = float(ranks.double().mean())
    return out


def metrics_from_ranks(t2v_ranks: Tensor, v2t_ranks: Tensor) -> dict[str, float]:
    """The keys of :data:`METRIC_KEYS` from per-query 1-based ranks (those of :func:`retrieval_ranks`)."""
    metrics = {**_summarise(t2v_ranks, "t2v"), **_summarise(v2t_ranks, "v2t")}
    for prefix in ("t2v", "v2t"):
        metrics[f"{prefix}_rsum"] = sum(metrics[f"{prefix}_R{k}"] for k in _RECALL_AT)
    metrics["rsum"] = metrics["t2v_rsum"]
    return {key: metrics[key] for key in METRIC_KEYS}


def retrieval_ranks(sim: Tensor, text_to_video: Tensor, *, chunk_size: int | None = None) -> tuple[Tensor, Tensor]:
    """(T2V ranks [num_texts], V2T ranks [num_videos]) of :func:`ranks_t2v` and :func:`ranks_v2t`, validated once."""
    t2v = _validate(sim, text_to_video)
    rows = _rows_per_chunk(sim.shape[1], chunk_size)
    return _ranks_t2v(sim, t2v, rows), _ranks_v2t(sim, t2v, rows)


def retrieval_metrics(sim: Tensor, text_to_video: Tensor, *, chunk_size: int | None = None) -> dict[str, float]:
    """T2V and V2T retrieval metrics of a similarity matrix (methods.md section 5).

    Args:
        sim: ``[num_texts, num_videos]`` float scores, higher = more similar; no NaN.
        text_to_video: int tensor ``[num_texts]``, the video each caption describes; every video
            must have at least one caption.
        chunk_size: rows per chunk (default: about 4M matrix elements per chunk).

    Ranks (1-based) are those of :func:`ranks_t2v` and :func:`ranks_v2t`. Tie rule: pessimistic,
    every competitor scoring ``>=`` the ground truth ranks before it, so a constant matrix gives
    the worst ranks. Returns the keys of :data:`METRIC_KEYS`: ``{t2v,v2t}_R{1,5,10}`` in percent,
    ``{t2v,v2t}_MdR`` (median rank, may end in .5), ``{t2v,v2t}_MnR`` (mean rank),
    ``{t2v,v2t}_rsum`` (R1 + R5 + R10) and ``rsum`` (= ``t2v_rsum``, the papers' "R@Sum").

    Raises:
        InputError: bad shapes or dtypes, out-of-range indices, NaN scores, or a video without
            captions.
    """
    return metrics_from_ranks(*retrieval_ranks(sim, text_to_video, chunk_size=chunk_size))
