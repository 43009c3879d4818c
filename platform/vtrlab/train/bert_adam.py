"""BertAdam, the optimizer of the MV-Adapter authors' (and CLIP4Clip's) recipe (methods.md section 2.6).

Adam without bias correction, the weight decay added to the update before the learning rate scales it:

    m <- b1 m + (1 - b1) g;   v <- b2 v + (1 - b2) g^2;   p <- p - lr * (m / (sqrt(v) + eps) + wd * p)

The authors' class also clips each gradient to norm 1.0 and applies their `warmup_cosine` factor inside
`step()`; here those are `vtrlab.train.step.clip_gradients(mode="per-tensor")` before the step and the
LambdaLR of `vtrlab.train.schedule.warmup_cosine(over="whole-run")` after it, which is the same arithmetic
(every trainable tensor gets a gradient every step, so their per-tensor step counters all equal the
scheduler's). Vectorised over each group's tensors with `torch._foreach_*`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch


class BertAdam(torch.optim.Optimizer):
    """Adam without bias correction, decoupled weight decay scaled by the learning rate (see the module)."""

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.98),
        eps: float = 1e-6,
        weight_decay: float = 0.0,
    ):
        if lr < 0 or eps < 0 or weight_decay < 0 or not all(0 <= beta < 1 for beta in betas):
            raise ValueError(f"BertAdam: invalid lr={lr}, betas={betas}, eps={eps} or weight_decay={weight_decay}")
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            if any(p.grad.is_sparse for p in params):
                raise RuntimeError("BertAdam does not support sparse gradients")
            for p in params:
                state = self.state[p]
                if not state:
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            grads = [p.grad for p in params]
            exp_avg = [self.state[p]["exp_avg"] for p in params]
            exp_avg_sq = [self.state[p]["exp_avg_sq"] for p in params]
            beta1, beta2 = group["betas"]
            torch._foreach_mul_(exp_avg, beta1)
            torch._foreach_add_(exp_avg, grads, alpha=1 - beta1)
            torch._foreach_mul_(exp_avg_sq, beta2)
            torch._foreach_addcmul_(exp_avg_sq, grads, grads, value=1 - beta2)
            denominator = torch._foreach_sqrt(exp_avg_sq)
            torch._foreach_add_(denominator, group["eps"])
            update = torch._foreach_div(exp_avg, denominator)
            if group["weight_decay"] > 0:
                torch._foreach_add_(update, params, alpha=group["weight_decay"])
            torch._foreach_add_(params, update, alpha=-group["lr"])
        return loss
