"""Training checkpoints: the adapter artifact plus optimizer, scheduler and progress.

The adapter part is the same artifact `vtrlab pull` serves (safetensors + JSON); the trainer state is
loaded with `torch.load(weights_only=True)`, which only reconstructs tensors and plain containers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from vtrlab.model.artifacts import EvaluationSettings, load_adapter_into, save_adapter
from vtrlab.model.dual_encoder import VideoTextDualEncoder

TRAINER_STATE = "trainer_state.pt"


def save_training_state(
    directory: str | Path,
    encoder: VideoTextDualEncoder,
    optimizer: torch.optim.Optimizer | None,
    scheduler: Any,
    epoch: int,
    evaluation: EvaluationSettings | None = None,
    **extra: Any,
) -> Path:
    """Write the checkpoint of a finished `epoch` to `directory`; the adapter records `evaluation`, the
    settings its metrics were measured with."""
    directory = Path(directory)
    save_adapter(encoder, directory, evaluation=evaluation, epoch=epoch, **extra)
    state = {
        "epoch": epoch,
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
    }
    tmp = directory / f".{TRAINER_STATE}.tmp"
    torch.save(state, tmp)
    tmp.replace(directory / TRAINER_STATE)
    return directory


def load_training_state(
    directory: str | Path,
    encoder: VideoTextDualEncoder,
    optimizer: torch.optim.Optimizer | None,
    scheduler: Any,
) -> int:
    """Restore the encoder's trainable tensors, optimizer and scheduler; returns the finished epoch."""
    directory = Path(directory)
    load_adapter_into(encoder, directory)
    state = torch.load(directory / TRAINER_STATE, map_location="cpu", weights_only=True)
    if optimizer is not None and state["optimizer"] is not None:
        optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and state["scheduler"] is not None:
        scheduler.load_state_dict(state["scheduler"])
    return int(state["epoch"])
