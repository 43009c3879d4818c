"""Training in this process (no Ray): for pretraining the tiny backbone and for quick experiments and tests.

Ray Train runs (`vtrlab.train.loop`) add DDP, checkpoints and MLflow around the same `training_step`.
"""

from __future__ import annotations

from collections.abc import Callable

from vtrlab.model.dual_encoder import VideoTextDualEncoder
from vtrlab.train.schedule import warmup_cosine
from vtrlab.train.step import make_optimizer, training_step


def train_in_process(
    encoder: VideoTextDualEncoder,
    loader,
    epochs: int,
    lr: dict[str, float],
    weight_decay: float = 0.2,
    warmup_ratio: float = 0.1,
    on_step: Callable[[float], None] | None = None,
) -> list[float]:
    """`epochs` passes over a train loader with AdamW and warm-up + cosine; returns every step's loss."""
    optimizer = make_optimizer(encoder, lr=lr, weight_decay=weight_decay)
    scheduler = warmup_cosine(optimizer, len(loader) * epochs, warmup_ratio)
    losses: list[float] = []
    for epoch in range(epochs):
        loader.set_epoch(epoch)
        for batch in loader:
            losses.append(
                training_step(
                    encoder,
                    optimizer,
                    batch["frames"],
                    batch["frame_mask"],
                    batch["tokens"],
                    scheduler=scheduler,
                    video_keys=batch.get("video_key"),
                )
            )
            if on_step is not None:
                on_step(losses[-1])
    return losses
