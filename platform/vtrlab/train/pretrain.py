"""Pretrain a tiny CLIP on the synthetic image-caption set, so tests and demos freeze a *pretrained* backbone.

Real users start from open_clip's pretrained weights; those cannot be downloaded here, and a frozen random
backbone would make every adapter comparison meaningless. This trains all of a tiny CLIP (e.g. `vtr-tiny`)
contrastively on single images of coloured shapes ("a red square"), then writes an open_clip state dict as
safetensors, which `weights=` accepts like any weights file.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch
from rich.progress import Progress
from safetensors.torch import save_file

from vtrlab.data import make_train_loader
from vtrlab.model.factory import create_model
from vtrlab.train.local import train_in_process


def pretrain_backbone(
    data: str,
    out: str | os.PathLike,
    backbone: str = "vtr-tiny",
    split: str = "images",
    epochs: int = 30,
    batch_size: int = 64,
    lr: float = 2e-3,
    seed: int = 0,
    show_progress: bool = True,
    threads: int = 2,
) -> Path:
    """Train `backbone` on `split` of the synthetic dataset at `data`; write its weights to `out`.

    Reproducible: `seed` fixes the init and the data order, `threads` the intra-op threads (a CPU kernel's
    sums depend on how it splits them), so the same machine writes the same weights whatever its core count."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _pretrain(data, Path(out), backbone, split, epochs, batch_size, lr, seed, show_progress)
    finally:
        torch.set_num_threads(previous)


def _pretrain(
    data: str, out: Path, backbone: str, split: str, epochs: int, batch_size: int, lr: float, seed: int, show: bool
) -> Path:
    torch.manual_seed(seed)
    encoder = create_model("full", backbone)
    loader = make_train_loader(data, split, batch_size=batch_size, num_frames=1, max_words=32, seed=seed)
    with Progress(disable=not show, transient=True) as progress:
        task = progress.add_task(f"pretraining {backbone} on {split}", total=epochs * len(loader))

        def advance(loss: float) -> None:
            progress.update(task, advance=1, description=f"pretraining {backbone}: loss {loss:.3f}")

        losses = train_in_process(
            encoder, loader, epochs, lr={"backbone": lr}, weight_decay=0.05, warmup_ratio=0.05, on_step=advance
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in encoder.clip.state_dict().items()}
    fd, tmp = tempfile.mkstemp(dir=out.parent, suffix=".tmp")
    os.close(fd)
    save_file(state, tmp, metadata={"backbone": backbone, "data": str(data), "final_loss": f"{losses[-1]:.4f}"})
    os.replace(tmp, out)
    return out
