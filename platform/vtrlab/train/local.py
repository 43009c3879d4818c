"""Training in this process (no Ray): for pretraining the tiny backbone and for quick experiments and tests.

Ray Train runs (`vtrlab.train.loop`) add DDP, checkpoints and MLflow around the same `training_step`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

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


def split_ranks(
    encoder: VideoTextDualEncoder, data: str, split: str, num_frames: int, max_words: int, batch_size: int = 128
) -> torch.Tensor:
    """Every query's 1-based T2V rank on `split` of the shards at `data` (the ranks evaluation keeps with a run)."""
    from vtrlab.data import make_eval_loader
    from vtrlab.train.evaluate import evaluate_queries

    loader = make_eval_loader(data, split, batch_size=batch_size, num_frames=num_frames, max_words=max_words)
    return evaluate_queries(encoder, loader)[1].t2v


def recipe_test_ranks(
    method: str, entry: dict[str, Any], train: dict[str, Any], data: str, weights: str, seed: int = 0
) -> torch.Tensor:
    """Train `method` on vtr-tiny in this process with a sweep spec's fixed recipe (the spec's `train` fields,
    the method entry's `train` overrides and `knobs`; nothing trained for zero-shot) and return its test ranks."""
    from vtrlab.data import make_train_loader
    from vtrlab.model.factory import create_model

    torch.manual_seed(seed)
    encoder = create_model(method, "vtr-tiny", weights, entry.get("knobs") or {})
    recipe = {**train, **(entry.get("train") or {})}
    frames, words = recipe.get("num_frames", 12), recipe.get("max_words", 32)
    if method != "zero-shot":
        loader = make_train_loader(
            data,
            "train",
            batch_size=recipe["batch_size"],
            num_frames=frames,
            max_words=words,
            seed=seed,
            epoch_batches=recipe.get("epoch_batches"),
        )
        lr = {"method": float(recipe["lr"]), "backbone_bias": float(recipe.get("backbone_lr", 1e-7))}
        train_in_process(
            encoder,
            loader,
            recipe["epochs"],
            lr,
            weight_decay=float(recipe.get("weight_decay", 0.2)),
            warmup_ratio=float(recipe.get("warmup_ratio", 0.1)),
        )
    return split_ranks(encoder, data, "test", frames, words, recipe.get("eval_batch_size", 128))
