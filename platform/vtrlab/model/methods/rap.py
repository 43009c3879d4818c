"""RAP: sparse-and-correlated adapter (Cao et al., ACL Findings 2024; methods.md section 3).

RAP has no public code; this is vtrlab's reading of the paper, every open choice a knob:

- Placement: both modules refine the *frozen* backbone's per-frame outputs (the paper: "refine the
  per-image features from the frozen CLIP backbone"), so no gradient flows through the backbone at all;
  the text tower is untouched.
- ASA (asynchronous self-attention): per frame, keep the top `sparsity` fraction of patch tokens, scored
  by cosine similarity to the frame's own CLS embedding (`selection="query-agnostic"`, the default: the
  model stays a dual encoder and video embeddings can be cached) or to the query text
  (`selection="text-conditioned"`: one video embedding per text, O(texts x videos) at evaluation).
  The kept patches get a learnable patch offset gamma (per patch position) and temporal offset delta
  (per frame); each frame's CLS then attends to the kept patches of *all* frames (cross-frame
  correlation) in a `asa_width`-wide space, and the result is up-projected (zero-initialised) onto it.
- LoRM (low-rank modulation): a shift c_v and scale s_v for the frame features [F x D], factorised as
  G (F x rank) times W (rank x D): G is a softmax over the valid frames (per rank component, plus a
  learnable temporal position), which emphasises salient frames and damps redundant ones; W starts at
  zero, so s_v = 1 and c_v = 0 at initialisation.
- The result is pooled with meanP.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from vtrlab.errors import ConfigError
from vtrlab.model.dual_encoder import VideoTextDualEncoder, masked_mean_pool
from vtrlab.model.layers import AdapterModule, LayerNorm, zero_init_linear
from vtrlab.model.methods.common import unfreeze_backbone_biases
from vtrlab.model.methods.registry import Knobs, register_method

Selection = Literal["query-agnostic", "text-conditioned"]


class RapKnobs(Knobs):
    rank: Annotated[int, Field(gt=0, description="LoRM rank r")] = 8
    sparsity: Annotated[float, Field(gt=0, le=1, description="fraction of patches ASA keeps per frame")] = 0.25
    selection: Selection = "query-agnostic"
    asa_width: Annotated[int, Field(gt=0)] = 64
    asa_heads: Annotated[int, Field(gt=0)] = 2
    lorm: bool = True
    asa: bool = True
    max_frames: Annotated[int, Field(gt=0)] = 64
    train_backbone_biases: bool = False


class AsynchronousSelfAttention(nn.Module):
    """Top-k patch selection plus cross-frame attention from each frame's CLS to the kept patches."""

    def __init__(self, dim: int, num_patches: int, knobs: RapKnobs):
        super().__init__()
        width = knobs.asa_width
        self.keep = max(1, math.ceil(knobs.sparsity * num_patches))
        self.heads = knobs.asa_heads
        self.ln = LayerNorm(dim)
        self.query = nn.Linear(dim, width)
        self.key_value = nn.Linear(dim, 2 * width)
        self.patch_offset = nn.Parameter(torch.zeros(num_patches, width))  # gamma
        self.temporal_offset = nn.Parameter(torch.zeros(knobs.max_frames, width))  # delta
        nn.init.normal_(self.patch_offset, std=0.02)
        nn.init.normal_(self.temporal_offset, std=0.02)
        self.up = zero_init_linear(width, dim)

    def forward(
        self, frame_emb: torch.Tensor, patch_emb: torch.Tensor, frame_mask: torch.Tensor, scores: torch.Tensor
    ) -> torch.Tensor:
        """frame_emb [N, F, D], patch_emb [N, F, P, D], frame_mask [N, F], scores [N, F, P] -> [N, F, D]."""
        batch, frames, _, dim = patch_emb.shape
        top = scores.topk(self.keep, dim=-1).indices  # [N, F, k]
        kept = patch_emb.gather(2, top.unsqueeze(-1).expand(-1, -1, -1, dim))
        delta = self.temporal_offset[:frames]
        keys, values = self.key_value(self.ln(kept)).chunk(2, dim=-1)
        keys = keys + self.patch_offset[top] + delta[None, :, None]
        query = self.query(self.ln(frame_emb)) + delta[None]
        width = query.shape[-1]

        def heads(x: torch.Tensor) -> torch.Tensor:
            return x.reshape(batch, -1, self.heads, width // self.heads).transpose(1, 2)

        key_mask = frame_mask.repeat_interleave(self.keep, dim=1)  # [N, F*k]: patches of padded frames
        attended = F.scaled_dot_product_attention(
            heads(query), heads(keys), heads(values), attn_mask=key_mask[:, None, None, :]
        )
        attended = attended.transpose(1, 2).reshape(batch, frames, width)
        return frame_emb + self.up(attended)


class LowRankModulation(nn.Module):
    """Frame features * (1 + s_v) + c_v with [s_v, c_v] = softmax_t(G) W, rank-r along time."""

    def __init__(self, dim: int, knobs: RapKnobs):
        super().__init__()
        self.ln = LayerNorm(dim)
        self.factor = nn.Linear(dim, knobs.rank)
        self.temporal_position = nn.Parameter(torch.randn(knobs.max_frames, knobs.rank) * 0.02)
        self.modulation = zero_init_linear(knobs.rank, 2 * dim)

    def forward(self, frame_emb: torch.Tensor, frame_mask: torch.Tensor) -> torch.Tensor:
        frames = frame_emb.shape[1]
        logits = self.factor(self.ln(frame_emb)) + self.temporal_position[:frames]
        logits = logits.masked_fill(~frame_mask.unsqueeze(-1), float("-inf"))
        valid = frame_mask.sum(1, keepdim=True).unsqueeze(-1).to(frame_emb.dtype)
        salience = logits.softmax(dim=1) * valid  # mean 1 over the valid frames of each rank component
        scale, shift = self.modulation(salience).chunk(2, dim=-1)
        return frame_emb * (1 + scale) + shift


class RapVideoHead(AdapterModule):
    """RAP's video head: ASA then LoRM on the frozen backbone's frame and patch embeddings, then meanP."""

    needs_patch_tokens = True

    def __init__(self, dim: int, num_patches: int, knobs: RapKnobs):
        super().__init__()
        self.text_conditioned = knobs.selection == "text-conditioned"
        self.needs_patch_tokens = knobs.asa
        self.max_frames = knobs.max_frames
        self.asa = AsynchronousSelfAttention(dim, num_patches, knobs) if knobs.asa else None
        self.lorm = LowRankModulation(dim, knobs) if knobs.lorm else None

    def _refine(
        self, frame_emb: torch.Tensor, frame_mask: torch.Tensor, patch_emb: torch.Tensor | None, scores
    ) -> torch.Tensor:
        if self.asa is not None:
            frame_emb = self.asa(frame_emb, patch_emb, frame_mask, scores)
        if self.lorm is not None:
            frame_emb = self.lorm(frame_emb, frame_mask)
        return masked_mean_pool(frame_emb, frame_mask)

    def forward(
        self,
        frame_emb: torch.Tensor,
        frame_mask: torch.Tensor,
        patch_emb: torch.Tensor | None = None,
        text_emb: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if frame_emb.shape[1] > self.max_frames:
            raise ConfigError(f"RAP built for max_frames={self.max_frames} got {frame_emb.shape[1]} frames")
        if self.asa is None:
            return self._refine(frame_emb, frame_mask, None, None)
        patches = F.normalize(patch_emb, dim=-1)
        if not self.text_conditioned:
            scores = torch.einsum("bfpd,bfd->bfp", patches, F.normalize(frame_emb, dim=-1))
            return self._refine(frame_emb, frame_mask, patch_emb, scores)
        # one video embedding per (text, video) pair: [T, B, D]
        num_texts, batch = text_emb.shape[0], frame_emb.shape[0]
        scores = torch.einsum("bfpd,td->tbfp", patches, text_emb.to(patches.dtype)).flatten(0, 1)

        def repeat(x: torch.Tensor) -> torch.Tensor:
            return x.unsqueeze(0).expand(num_texts, *x.shape).flatten(0, 1)

        pooled = self._refine(repeat(frame_emb), repeat(frame_mask), repeat(patch_emb), scores)
        return pooled.view(num_texts, batch, -1)


@register_method(
    "rap", RapKnobs, "RAP: low-rank temporal modulation + sparse cross-frame patch attention (rank, sparsity)"
)
def apply_rap(encoder: VideoTextDualEncoder, knobs: RapKnobs) -> None:
    dim = encoder.embed_dim
    if knobs.rank > dim:
        raise ConfigError(f"knob rank={knobs.rank} is larger than the embedding width {dim}; allowed: 1..{dim}")
    if knobs.asa_width % knobs.asa_heads:
        raise ConfigError(f"knob asa_width={knobs.asa_width} must be divisible by asa_heads={knobs.asa_heads}")
    grid = encoder.clip.visual.grid_size
    encoder.video_head = RapVideoHead(dim, int(grid[0] * grid[1]), knobs)
    if knobs.train_backbone_biases:
        unfreeze_backbone_biases(encoder)
