"""Symmetric InfoNCE with negatives all-gathered across data-parallel workers (methods.md section 1.3).

Distributed contract (the open_clip ``ClipLoss`` approach, ``local_loss=False``): every rank
all-gathers the text and video embeddings of the whole global batch, computes the full global
logits and returns the global loss, so the loss value is identical on every rank. Gathered copies
carry no gradient: each rank's backward pushes gradient only through its *local* embeddings, so
the SUM over ranks of the gradients equals the single-process full-batch gradient. DDP averages
gradients over ranks, so a loop that wants the exact full-batch gradient multiplies the loss by
:func:`ddp_loss_scale` (the world size) before ``backward()``.

Pairs of the same video: a batch may hold two captions of one video. Given ``video_keys`` (one int64 key
per pair, e.g. the loader's ``video_key``; all-gathered with the embeddings), a logit whose text and video
belong to different pairs of the same video counts neither as a positive nor as a negative (it is set to
``-inf`` in both directions; each pair's own logit stays the positive). Without such twins the loss is
exactly CLIP4Clip's (which does not mask: its uniform shuffle makes twins rare).
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor

from vtrlab.errors import InputError

__all__ = [
    "ddp_loss_scale",
    "gather_with_local_grad",
    "infonce_from_logits",
    "same_video_mask",
    "symmetric_infonce",
]


def _world_size() -> int:
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


def ddp_loss_scale() -> int:
    """The factor to multiply :func:`symmetric_infonce` by before ``backward()`` under DDP.

    Equals the world size when ``torch.distributed`` is initialised, else 1. With it, DDP's
    gradient averaging yields exactly the single-process full-batch gradient.
    """
    return _world_size()


def gather_with_local_grad(x: Tensor) -> Tensor:
    """All-gather ``x`` along dim 0 in rank order; only this rank's slot carries gradient.

    Every rank must pass a tensor of the same shape and dtype. Without an initialised process
    group, or with world size 1, ``x`` is returned unchanged.
    """
    world = _world_size()
    if world == 1:
        return x
    x = x.contiguous()
    gathered = [torch.empty_like(x) for _ in range(world)]
    dist.all_gather(gathered, x.detach())
    gathered[dist.get_rank()] = x  # keep the autograd graph for the local part
    return torch.cat(gathered, dim=0)


def same_video_mask(video_keys: Tensor) -> Tensor:
    """bool ``[N, N]``: True where pairs ``i != j`` have the same video key (twins: not a negative).

    ``video_keys`` is 1-D ``[N]`` (any integer dtype); the diagonal is False. Runs on the keys' device,
    no host sync.
    """
    if video_keys.dim() != 1:
        raise InputError(f"video_keys must be 1-D [N], got shape {tuple(video_keys.shape)}")
    same = video_keys[:, None] == video_keys[None, :]
    return same & ~torch.eye(len(video_keys), dtype=torch.bool, device=video_keys.device)


def _loss_dtype(*tensors: Tensor) -> torch.dtype:
    """float32, or float64 when an input is float64 (never bf16/fp16)."""
    dtype = torch.float32
    for t in tensors:
        dtype = torch.promote_types(dtype, t.dtype)
    return dtype


def infonce_from_logits(logits: Tensor, labels: Tensor | None = None, ignore: Tensor | None = None) -> Tensor:
    """Symmetric InfoNCE of ``[N_text, N_video]`` logits whose matching pairs are ``(i, labels[i])``.

    ``0.5 * (CE over rows (t2v) + CE over columns (v2t))``. The t2v term classifies each text
    ``i`` among all videos (target ``labels[i]``); the v2t term classifies, for each pair, video
    ``labels[i]`` among all texts (target ``i``), both averaged over the ``N_text`` pairs. With the
    default diagonal labels (a square matrix) this is CLIP's loss. ``ignore`` (bool, the logits'
    shape, e.g. :func:`same_video_mask`): entries that count neither as positive nor as negative, in
    either direction (the pairs' own entries are never ignored). Computed in float32 (float64 if the
    logits are float64) even under autocast.
    """
    if logits.dim() != 2:
        raise InputError(f"logits must be 2-D [N_text, N_video], got shape {tuple(logits.shape)}")
    num_texts, num_videos = logits.shape
    if num_texts == 0:
        raise InputError("logits has no rows: InfoNCE needs at least one pair")
    if labels is None:
        if num_texts != num_videos:
            raise InputError(f"diagonal labels need square logits, got shape {tuple(logits.shape)}; pass labels")
        labels = torch.arange(num_texts, device=logits.device)
    else:
        if labels.dim() != 1 or labels.numel() != num_texts:
            raise InputError(
                f"labels must be 1-D with {num_texts} entries (one per logits row), got shape {tuple(labels.shape)}"
            )
        if labels.is_floating_point() or labels.dtype == torch.bool:
            raise InputError(f"labels must be an integer tensor, got dtype {labels.dtype}")
        if labels.device.type == "cpu" and bool(((labels < 0) | (labels >= num_videos)).any()):
            raise InputError(
                f"labels must lie in [0, {num_videos}), got min {int(labels.min())} max {int(labels.max())}"
            )
        labels = labels.to(device=logits.device, dtype=torch.long)
    if ignore is not None and ignore.shape != logits.shape:
        raise InputError(f"ignore must have the logits' shape {tuple(logits.shape)}, got {tuple(ignore.shape)}")
    with torch.autocast(device_type=logits.device.type, enabled=False):
        logits = logits.to(_loss_dtype(logits))
        if ignore is not None:
            positives = torch.arange(num_videos, device=logits.device)[None, :] == labels[:, None]
            logits = logits.masked_fill(ignore.to(logits.device) & ~positives, float("-inf"))
        loss_t2v = F.cross_entropy(logits, labels)
        targets = torch.arange(num_texts, device=logits.device)
        loss_v2t = F.cross_entropy(logits.t()[labels], targets)
        return (loss_t2v + loss_v2t) / 2


def symmetric_infonce(
    text_emb: Tensor, video_emb: Tensor, logit_scale: Tensor | float, video_keys: Tensor | None = None
) -> Tensor:
    """Global symmetric InfoNCE over the all-gathered batch, pair ``i`` = (``text_emb[i]``, ``video_emb[i]``).

    Args:
        text_emb: ``[N, D]`` local text embeddings (normally L2-normalised).
        video_emb: ``[N, D]`` local video embeddings; ``N`` must be equal on every rank.
        logit_scale: the multiplier itself (CLIP's ``logit_scale.exp()``, e.g. 100), a float or
            a scalar tensor.
        video_keys: ``[N]`` integer key of each pair's video, or None. Given (on every rank), the keys
            are all-gathered and pairs of the same video are not each other's negatives, across
            ranks too (:func:`same_video_mask`); None: every other pair is a negative.

    Returns the loss of ``logit_scale * text @ video.T`` over the global batch (``world * N``
    pairs, rank-ordered), the same value on every rank, computed in float32 even under bf16
    autocast. Each rank's backward reaches only its local embeddings; the sum over ranks of the
    gradients is the full-batch gradient (see the module docstring and :func:`ddp_loss_scale`).
    A ``logit_scale`` tensor that requires grad follows the same rule: it sees every logit on
    every rank, so its gradient is divided by the world size here, and the sum over ranks is
    again the full-batch gradient.
    """
    if text_emb.dim() != 2 or video_emb.dim() != 2:
        raise InputError(
            f"embeddings must be 2-D [N, D], got text {tuple(text_emb.shape)} and video {tuple(video_emb.shape)}"
        )
    if text_emb.shape != video_emb.shape:
        raise InputError(
            f"text and video embeddings must have the same shape [N, D] (pair i = row i), "
            f"got text {tuple(text_emb.shape)} and video {tuple(video_emb.shape)}"
        )
    if video_keys is not None and tuple(video_keys.shape) != (text_emb.shape[0],):
        raise InputError(
            f"video_keys must have shape ({text_emb.shape[0]},) (one per pair), got {tuple(video_keys.shape)}"
        )
    world = _world_size()
    all_text = gather_with_local_grad(text_emb)
    all_video = gather_with_local_grad(video_emb)
    ignore = None
    if video_keys is not None:
        ignore = same_video_mask(gather_with_local_grad(video_keys.to(device=text_emb.device, dtype=torch.long)))
    with torch.autocast(device_type=text_emb.device.type, enabled=False):
        dtype = _loss_dtype(text_emb, video_emb)
        scale = torch.as_tensor(logit_scale, device=text_emb.device).to(dtype)
        if world > 1 and scale.requires_grad:
            # Same value, 1/world of the gradient: a local share, like the embeddings.
            scale = scale.detach() + (scale - scale.detach()) / world
        logits = scale * (all_text.to(dtype) @ all_video.to(dtype).t())
        return infonce_from_logits(logits, ignore=ignore)
