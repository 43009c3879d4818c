"""Shared builders for the model tests: one tiny random backbone, copied per test so tests stay independent."""

from __future__ import annotations

import copy
import functools

import torch

from vtrlab.model.backbone import load_backbone
from vtrlab.model.dual_encoder import VideoTextDualEncoder
from vtrlab.model.factory import create_model
from vtrlab.model.tokenizer import tokenize

TINY = "vtr-tiny"
CAPTIONS = [
    "a red square slides left, then a blue circle appears",
    "a blue circle appears, then a red square slides left",
    "a green triangle moves up",
    "a yellow square shrinks",
]


@functools.lru_cache(maxsize=1)
def _tiny_backbone():
    torch.manual_seed(1234)
    return load_backbone(TINY)


def tiny_model(method: str = "zero-shot", **knobs) -> VideoTextDualEncoder:
    """`method` on a private copy of the shared tiny random backbone (identical weights every call)."""
    clip, info = _tiny_backbone()
    return create_model(method, knobs=knobs, clip=copy.deepcopy(clip), backbone_info=info)


def video_batch(batch: int = 4, frames: int = 6, seed: int = 0, pad_last: bool = True):
    """uint8 frames [B, F, 3, 32, 32] with a per-clip trend over time, a frame mask, and tokens."""
    generator = torch.Generator().manual_seed(seed)
    base = torch.randint(0, 256, (batch, 1, 3, 32, 32), generator=generator).float()
    drift = torch.randn(batch, 1, 3, 32, 32, generator=generator) * 20
    steps = torch.arange(frames).view(1, frames, 1, 1, 1)
    clips = (base + drift * steps).clamp(0, 255).to(torch.uint8)
    mask = torch.ones(batch, frames, dtype=torch.bool)
    if pad_last:
        mask[-1, frames // 2 :] = False
    tokens = tokenize([CAPTIONS[i % len(CAPTIONS)] for i in range(batch)], max_words=32)
    return clips, mask, tokens


def video_embedding(encoder: VideoTextDualEncoder, frames, mask, tokens) -> torch.Tensor:
    """[B, D] video embeddings; text-conditioned heads are queried with each clip's own caption."""
    with torch.no_grad():
        if encoder.video_head.text_conditioned:
            text = encoder.encode_text(tokens)
            per_text = encoder.encode_video(frames, mask, text_emb=text)  # [T, B, D]
            return per_text[torch.arange(len(text)), torch.arange(len(text))]
        return encoder.encode_video(frames, mask)
