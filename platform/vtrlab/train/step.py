"""One optimisation step of a dual encoder, and the two training recipes of methods.md section 2.6.

Shared by training workers, the self-check and the step benchmark, so all of them time the same code.

A recipe (`RECIPES`) is the optimizer with its parameter groups, the gradient clipping, the learning-rate
schedule and how the loss is reduced over data-parallel ranks:

- `adamw` (vtrlab's): AdamW; no weight decay on biases, norms, embeddings and other 1-D tensors; clipping
  over the global norm; cosine over the post-warm-up steps; the loss multiplied by the world size, so DDP's
  gradient average equals the full-batch gradient.
- `bertadam` (the MV-Adapter authors'): BertAdam (`vtrlab.train.bert_adam`); weight decay on every tensor
  whose name has no "bias", and on the CLIP biases (their configuration); clipping over the global norm,
  then per tensor (their runner, then their optimizer); CLIP4Clip's whole-run warm-up cosine; the loss as
  computed (DDP averages the ranks' gradients, 1/world of the full-batch gradient).
"""

from __future__ import annotations

import dataclasses
from contextlib import nullcontext
from typing import Literal

import torch

from vtrlab.config import ClipMode, OptimizerName
from vtrlab.model.dual_encoder import VideoTextDualEncoder
from vtrlab.model.params import parameter_groups
from vtrlab.train.bert_adam import BertAdam
from vtrlab.train.loss import ddp_loss_scale, infonce_from_logits, same_video_mask, symmetric_infonce
from vtrlab.train.schedule import ScheduleOver

DEFAULT_LR = {"method": 5e-6, "backbone_bias": 1e-7, "backbone": 1e-7}


@dataclasses.dataclass(frozen=True)
class Recipe:
    """What a training recipe does besides its optimizer: clipping, schedule, loss reduction over ranks."""

    optimizer: OptimizerName
    grad_clip: ClipMode
    schedule: ScheduleOver
    rank_loss: Literal["sum", "mean"]


RECIPES: dict[str, Recipe] = {
    "adamw": Recipe("adamw", "global", "post-warmup", "sum"),
    "bertadam": Recipe("bertadam", "global-then-per-tensor", "whole-run", "mean"),
}


def recipe_for(optimizer: OptimizerName, grad_clip: ClipMode | None = None) -> Recipe:
    """The recipe of `optimizer`, with its clipping replaced by `grad_clip` when given."""
    recipe = RECIPES[optimizer]
    return dataclasses.replace(recipe, grad_clip=grad_clip) if grad_clip is not None else recipe


def _adamw_groups(encoder: VideoTextDualEncoder, rates: dict[str, float], weight_decay: float) -> list[dict]:
    groups = []
    for role, named in parameter_groups(encoder).items():
        decay = [p for n, p in named if p.dim() >= 2 and "embedding" not in n]
        no_decay = [p for n, p in named if not (p.dim() >= 2 and "embedding" not in n)]
        for params, wd in ((decay, weight_decay), (no_decay, 0.0)):
            if params:
                groups.append({"params": params, "lr": rates[role], "weight_decay": wd, "role": role})
    return groups


def _authors_groups(encoder: VideoTextDualEncoder, rates: dict[str, float], weight_decay: float) -> list[dict]:
    """The MV-Adapter authors' groups: a method tensor decays unless "bias" is in its name (so norms,
    positional embeddings and the CC token decay); trained CLIP tensors, biases included, decay."""
    groups = []
    for role, named in parameter_groups(encoder).items():
        if role == "method":
            split = ([p for n, p in named if "bias" not in n], [p for n, p in named if "bias" in n])
        else:
            split = ([p for _, p in named], [])
        for params, wd in zip(split, (weight_decay, 0.0), strict=True):
            if params:
                groups.append({"params": params, "lr": rates[role], "weight_decay": wd, "role": role})
    return groups


def make_optimizer(
    encoder: VideoTextDualEncoder,
    lr: dict[str, float] | None = None,
    weight_decay: float = 0.2,
    betas: tuple[float, float] = (0.9, 0.98),
    eps: float = 1e-6,
    optimizer: OptimizerName = "adamw",
) -> torch.optim.Optimizer | None:
    """The recipe's optimizer with one group per parameter role and its own learning rate (see the module
    docstring for each recipe's weight-decay groups). None when nothing trains."""
    rates = {**DEFAULT_LR, **(lr or {})}
    if optimizer == "bertadam":
        groups = _authors_groups(encoder, rates, weight_decay)
        return BertAdam(groups, betas=betas, eps=eps) if groups else None
    if optimizer != "adamw":
        raise ValueError(f"unknown optimizer {optimizer!r}; allowed: {', '.join(RECIPES)}")
    groups = _adamw_groups(encoder, rates, weight_decay)
    if not groups:
        return None
    on_cuda = all(p.is_cuda for group in groups for p in group["params"])
    return torch.optim.AdamW(groups, betas=betas, eps=eps, fused=on_cuda or None)


def clip_gradients(params: list[torch.Tensor], max_norm: float, mode: ClipMode = "global") -> None:
    """Clip gradients in place to `max_norm`: over their global norm, per tensor (each gradient scaled by
    min(1, max_norm / (norm + 1e-6)), as torch's clip_grad_norm_ on one tensor), or the first then the
    second. No host sync."""
    with_grads = [p for p in params if p.grad is not None]
    if not with_grads:
        return
    if mode in ("global", "global-then-per-tensor"):
        torch.nn.utils.clip_grad_norm_(with_grads, max_norm)
    if mode in ("per-tensor", "global-then-per-tensor"):
        grads = [p.grad for p in with_grads]
        norms = torch.stack(torch._foreach_norm(grads))
        torch._foreach_mul_(grads, list((max_norm / (norms + 1e-6)).clamp(max=1.0).unbind()))


def autocast_for(device: torch.device | str, enabled: bool = True):
    """bf16 autocast on CUDA (and where asked on CPU); a no-op context otherwise."""
    device = torch.device(device)
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


def unwrap(model: torch.nn.Module) -> VideoTextDualEncoder:
    """The dual encoder inside a DistributedDataParallel wrapper (or the model itself)."""
    return getattr(model, "module", model)


def contrastive_loss(
    model: torch.nn.Module,
    frames: torch.Tensor,
    frame_mask: torch.Tensor,
    tokens: torch.Tensor,
    video_keys: torch.Tensor | None = None,
    mask_same_video: bool = True,
) -> torch.Tensor:
    """Symmetric InfoNCE of a batch of (clip, caption) pairs; negatives gathered across ranks for dual
    encoders, local to the batch for text-conditioned video heads. `model` may be DDP-wrapped.

    `video_keys` ([B] int64, the loader's `video_key`) with `mask_same_video` (default): two pairs of the
    same video are not each other's negatives (vtrlab.train.loss); without keys, or with
    `mask_same_video=False`, every other pair is a negative (CLIP4Clip's loss)."""
    text_emb, video_emb = model(frames, frame_mask, tokens)
    encoder = unwrap(model)
    scale = encoder.logit_scale()
    keys = video_keys.to(text_emb.device, non_blocking=True) if video_keys is not None and mask_same_video else None
    if video_emb.dim() == 3:
        ignore = same_video_mask(keys) if keys is not None else None
        return infonce_from_logits(scale * encoder.similarity(text_emb, video_emb), ignore=ignore)
    return symmetric_infonce(text_emb, video_emb, scale, video_keys=keys)


def training_step(
    encoder: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None,
    frames: torch.Tensor,
    frame_mask: torch.Tensor,
    tokens: torch.Tensor,
    max_grad_norm: float | None = 1.0,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    recipe: Recipe = RECIPES["adamw"],
    video_keys: torch.Tensor | None = None,
    mask_same_video: bool = True,
) -> float:
    """Forward, backward (bf16 autocast on GPU), gradient clipping, optimizer and scheduler step as the
    `recipe` says; returns the loss. With no optimizer (zero-shot) only the loss is computed. `video_keys`
    and `mask_same_video`: see `contrastive_loss`."""
    device = frames.device
    if optimizer is None:
        with torch.no_grad(), autocast_for(device):
            return float(contrastive_loss(encoder, frames, frame_mask, tokens, video_keys, mask_same_video))
    encoder.train()
    with autocast_for(device):
        loss = contrastive_loss(encoder, frames, frame_mask, tokens, video_keys, mask_same_video)
    (loss * ddp_loss_scale() if recipe.rank_loss == "sum" else loss).backward()
    params = [p for group in optimizer.param_groups for p in group["params"]]
    if max_grad_norm is not None:
        clip_gradients(params, max_grad_norm, recipe.grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    if scheduler is not None:
        scheduler.step()
    return float(loss.detach())
