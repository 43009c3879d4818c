"""Learning-rate schedules: linear warm-up then cosine decay (methods.md section 2.6).

Two readings of "10% warm-up, then cosine", one per training recipe:

- ``over="post-warmup"`` (the `adamw` recipe): the factor rises linearly to 1 over the warm-up steps, then
  a cosine runs from 1 to 0 over the remaining steps.
- ``over="whole-run"`` (the `bertadam` recipe, CLIP4Clip's `warmup_cosine`): with x = step / total steps,
  the factor is x / warmup_ratio while x < warmup_ratio, then 0.5 * (1 + cos(pi * x)): the cosine runs
  over the whole run, so it starts at 0.5 * (1 + cos(pi * warmup_ratio)) (0.976 for 10%) right after the
  warm-up, and the first step has factor 0.
"""

from __future__ import annotations

import math
from typing import Literal

import torch

ScheduleOver = Literal["post-warmup", "whole-run"]


def warmup_cosine(
    optimizer: torch.optim.Optimizer,
    total_steps: int,
    warmup_ratio: float = 0.1,
    over: ScheduleOver = "post-warmup",
) -> torch.optim.lr_scheduler.LambdaLR:
    """A LambdaLR multiplying every group's lr by warm-up/cosine factors over `total_steps` steps."""
    total_steps = max(1, total_steps)
    if over == "whole-run":

        def factor(step: int) -> float:
            progress = step / total_steps
            if progress < warmup_ratio:
                return progress / warmup_ratio
            return 0.5 * (1.0 + math.cos(math.pi * progress))

        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)

    warmup = int(total_steps * warmup_ratio)

    def post_warmup_factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, post_warmup_factor)
