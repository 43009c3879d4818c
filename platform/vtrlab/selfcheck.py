"""`vtrlab selfcheck`: build every method on a backbone, count its parameters, run one training step."""

from __future__ import annotations

import copy
import time

import torch
from rich.console import Console
from rich.table import Table

from vtrlab.model.factory import create_model
from vtrlab.model.methods import list_methods
from vtrlab.model.params import count_parameters
from vtrlab.model.tokenizer import tokenize
from vtrlab.train.step import make_optimizer, training_step

CAPTIONS = (
    "a red square slides left, then a blue circle appears",
    "a blue circle appears, then a red square slides left",
    "a green triangle moves up",
    "a yellow square shrinks and a red circle grows",
)


def random_batch(
    encoder, batch_size: int, num_frames: int, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """uint8 frames [B, F, 3, H, W], a frame mask with one shorter clip, and caption tokens."""
    generator = torch.Generator().manual_seed(seed)
    height, width = encoder.image_size
    frames = torch.randint(0, 256, (batch_size, num_frames, 3, height, width), generator=generator)
    mask = torch.ones(batch_size, num_frames, dtype=torch.bool)
    mask[-1, num_frames // 2 :] = False
    captions = [CAPTIONS[i % len(CAPTIONS)] for i in range(batch_size)]
    return frames.to(torch.uint8), mask, tokenize(captions, max_words=32)


DEMO_LR = {"method": 1e-3, "backbone_bias": 1e-5, "backbone": 1e-5}


def run_selfcheck(backbone: str = "vtr-tiny", num_frames: int = 4, batch_size: int = 4, steps: int = 3) -> list[dict]:
    """Print and return, per method: parameter counts, the distance of its initial video embeddings from
    frozen CLIP's, the loss of the first and last of `steps` training steps on one batch (a larger
    learning rate than the paper's, so a few steps show movement) and the time of one step."""
    console = Console()
    torch.manual_seed(0)
    reference = create_model("zero-shot", backbone)
    frames, mask, tokens = random_batch(reference, batch_size, num_frames)
    with torch.no_grad():
        frozen_video = reference.encode_video(frames, mask)
    table = Table(title=f"vtrlab self-check on {backbone} ({batch_size} clips x {num_frames} frames, CPU)")
    for column in ("method", "trainable", "% of CLIP", "init = frozen", "loss 1st→last", "step ms"):
        table.add_column(column, justify="left" if column == "method" else "right")
    rows = []
    for method in list_methods():
        clip = copy.deepcopy(reference.clip)
        encoder = create_model(method, clip=clip, backbone_info=reference.backbone)
        counts = count_parameters(encoder)
        with torch.no_grad():
            text_query = encoder.encode_text(tokens) if encoder.video_head.text_conditioned else None
            video = encoder.encode_video(frames, mask, text_emb=text_query)
            video = video[0] if video.dim() == 3 else video
        init_gap = float((video - frozen_video).abs().max())
        optimizer = make_optimizer(encoder, lr=DEMO_LR)
        losses, times = [], []
        for _ in range(steps):
            start = time.perf_counter()
            losses.append(training_step(encoder, optimizer, frames, mask, tokens))
            times.append((time.perf_counter() - start) * 1000)
        rows.append(
            {
                "method": method,
                "trainable": counts.trainable,
                "trainable_pct": counts.trainable_pct,
                "init_max_abs_diff": init_gap,
                "losses": losses,
                "step_ms": min(times),
            }
        )
        table.add_row(
            method,
            f"{counts.trainable:,}",
            f"{counts.trainable_pct:.2f}",
            f"{init_gap:.1e}",
            f"{losses[0]:.3f}→{losses[-1]:.3f}",
            f"{min(times):.0f}",
        )
    console.print(table)
    console.print(
        "init = frozen: max |video embedding - frozen CLIP's| before training (new branches start at zero).\n"
        f"loss: symmetric InfoNCE over {steps} AdamW steps on one random batch (zero-shot does not train)."
    )
    return rows
