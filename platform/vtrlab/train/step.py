"""One optimisation step of a dual encoder, and the optimizer of methods.md section 2.6.

Shared by training workers, the self-check and the step benchmark, so all of them time the same code.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch

from vtrlab.model.dual_encoder import VideoTextDualEncoder
from vtrlab.model.params import parameter_groups
from vtrlab.train.loss import ddp_loss_scale, infonce_from_logits, symmetric_infonce

DEFAULT_LR = {"method": 5e-6, "backbone_bias": 1e-7, "backbone": 1e-7}


def make_optimizer(
    encoder: VideoTextDualEncoder,
    lr: dict[str, float] | None = None,
    weight_decay: float = 0.2,
    betas: tuple[float, float] = (0.9, 0.98),
    eps: float = 1e-6,
) -> torch.optim.Optimizer | None:
    """AdamW (decoupled weight decay) with one group per parameter role and its own learning rate; no
    weight decay on biases, norms, embeddings and other 1-D tensors. None when nothing trains."""
    rates = {**DEFAULT_LR, **(lr or {})}
    groups = []
    for role, named in parameter_groups(encoder).items():
        decay = [p for n, p in named if p.dim() >= 2 and "embedding" not in n]
        no_decay = [p for n, p in named if not (p.dim() >= 2 and "embedding" not in n)]
        for params, wd in ((decay, weight_decay), (no_decay, 0.0)):
            if params:
                groups.append({"params": params, "lr": rates[role], "weight_decay": wd, "role": role})
    if not groups:
        return None
    on_cuda = all(p.is_cuda for group in groups for p in group["params"])
    return torch.optim.AdamW(groups, betas=betas, eps=eps, fused=on_cuda or None)


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
    model: torch.nn.Module, frames: torch.Tensor, frame_mask: torch.Tensor, tokens: torch.Tensor
) -> torch.Tensor:
    """Symmetric InfoNCE of a batch of (clip, caption) pairs; negatives gathered across ranks for dual
    encoders, local to the batch for text-conditioned video heads. `model` may be DDP-wrapped."""
    text_emb, video_emb = model(frames, frame_mask, tokens)
    encoder = unwrap(model)
    scale = encoder.logit_scale()
    if video_emb.dim() == 3:
        return infonce_from_logits(scale * encoder.similarity(text_emb, video_emb))
    return symmetric_infonce(text_emb, video_emb, scale)


def training_step(
    encoder: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None,
    frames: torch.Tensor,
    frame_mask: torch.Tensor,
    tokens: torch.Tensor,
    max_grad_norm: float | None = 1.0,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
) -> float:
    """Forward, backward (bf16 autocast on GPU), gradient clipping, optimizer and scheduler step; returns
    the loss. With no optimizer (zero-shot) only the loss is computed."""
    device = frames.device
    if optimizer is None:
        with torch.no_grad(), autocast_for(device):
            return float(contrastive_loss(encoder, frames, frame_mask, tokens))
    encoder.train()
    with autocast_for(device):
        loss = contrastive_loss(encoder, frames, frame_mask, tokens)
    (loss * ddp_loss_scale()).backward()
    params = [p for group in optimizer.param_groups for p in group["params"]]
    if max_grad_norm is not None:
        torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    if scheduler is not None:
        scheduler.step()
    return float(loss.detach())
