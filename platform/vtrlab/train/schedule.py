"""Learning-rate schedule: linear warm-up then cosine decay to zero (methods.md section 2.6)."""

from __future__ import annotations

import math

import torch


def warmup_cosine(optimizer: torch.optim.Optimizer, total_steps: int, warmup_ratio: float = 0.1):
    """A LambdaLR multiplying every group's lr by warm-up/cosine factors over `total_steps` steps."""
    total_steps = max(1, total_steps)
    warmup = int(total_steps * warmup_ratio)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
