"""RAP: sparse-and-correlated adapter (Cao et al., ACL Findings 2024; methods.md section 3).

RAP has no public code; this is vtrlab's reading of the paper (section 3 says what the paper states and what
is unconfirmed), every open choice a knob:

- Placement: both modules refine the *frozen* backbone's per-frame outputs (the paper: "refine the
  per-image features from the frozen CLIP backbone"), so no gradient flows through the backbone at all;
  the text tower is untouched.
- ASA (asynchronous self-attention): per frame, keep the top `sparsity` fraction of patch tokens, scored
  by cosine similarity to the frame's own CLS embedding (`selection="query-agnostic"`, the default: the
  model stays a dual encoder and video embeddings can be cached) or to the query text
  (`selection="text-conditioned"`: one video embedding per text). The kept patches get a learnable patch
  offset gamma (per patch position) and temporal offset delta (per frame); each frame's CLS then attends
  to the kept patches of *all* frames (cross-frame correlation) in an `asa_width`-wide space, and the
  result is up-projected (zero-initialised) onto it.
- LoRM (low-rank modulation): a scale s_v, a shift c_v and a frame weight w_v for the frame features
  [F x D], factorised as G (F x rank) times W (rank x (2D + 1)): G is a softmax over the valid frames (per
  rank component, plus a learnable temporal position); W starts at zero, so s_v = 1, c_v = 0 and the
  weights are uniform at initialisation.
- Pooling: meanP, weighted by LoRM's frame weights (`salience_pooling`), the one place a per-frame
  emphasis survives meanP's per-frame L2 normalisation.

Text-conditioned selection never materialises texts x videos x frames x patches x width: keys, values and
attention logits depend on the video only; a text only changes which patches are attended to, so each
(text, video) pair costs a masked softmax over its video's logits, computed `PAIR_CHUNK` pairs at a time
(working memory about PAIR_CHUNK x F x F*P x 5 bytes: the boolean attention mask and the float mask
attention makes of it; no per-head logits are held; section 3.3).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
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
PAIR_CHUNK = 2048  # (text, video) pairs pooled at once by text-conditioned selection
VIDEO_CHUNK = 64  # videos whose keys, values and attention logits are computed at once


class RapKnobs(Knobs):
    rank: Annotated[int, Field(gt=0, description="LoRM rank r")] = 8
    sparsity: Annotated[float, Field(gt=0, le=1, description="fraction of patches ASA keeps per frame")] = 0.25
    selection: Selection = "query-agnostic"
    asa_width: Annotated[int, Field(gt=0)] = 64
    asa_heads: Annotated[int, Field(gt=0)] = 2
    lorm: bool = True
    asa: bool = True
    salience_pooling: bool = True
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

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """[..., L, width] -> [..., heads, L, width / heads]."""
        return x.unflatten(-1, (self.heads, -1)).transpose(-2, -3)

    def _merge_heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.transpose(-2, -3).flatten(-2)

    def _queries(self, frame_emb: torch.Tensor) -> torch.Tensor:
        """[N, F, D] -> [N, heads, F, width / heads]."""
        return self._split_heads(self.query(self.ln(frame_emb)) + self.temporal_offset[: frame_emb.shape[1]])

    def _keys_values(self, patches: torch.Tensor, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values [N, F, K, width] of patch tokens [N, F, K, D] at patch positions [N, F, K]."""
        keys, values = self.key_value(self.ln(patches)).chunk(2, dim=-1)
        delta = self.temporal_offset[: patches.shape[1]]
        return keys + self.patch_offset[positions] + delta[None, :, None], values

    def forward(
        self, frame_emb: torch.Tensor, patch_emb: torch.Tensor, frame_mask: torch.Tensor, scores: torch.Tensor
    ) -> torch.Tensor:
        """frame_emb [N, F, D], patch_emb [N, F, P, D], frame_mask [N, F], scores [N, F, P] -> [N, F, D]."""
        dim = patch_emb.shape[-1]
        top = scores.topk(self.keep, dim=-1).indices  # [N, F, k]
        kept = patch_emb.gather(2, top.unsqueeze(-1).expand(-1, -1, -1, dim))
        keys, values = self._keys_values(kept, top)
        key_mask = frame_mask.repeat_interleave(self.keep, dim=1)  # [N, F*k]: patches of padded frames
        attended = F.scaled_dot_product_attention(
            self._queries(frame_emb),
            self._split_heads(keys.flatten(1, 2)),
            self._split_heads(values.flatten(1, 2)),
            attn_mask=key_mask[:, None, None, :],
        )
        return frame_emb + self.up(self._merge_heads(attended))

    def per_text(
        self, frame_emb: torch.Tensor, patch_emb: torch.Tensor, frame_mask: torch.Tensor, text_emb: torch.Tensor
    ) -> Iterator[tuple[slice, slice, torch.Tensor]]:
        """Text-conditioned ASA: frame features refined for every (text, video) pair, as blocks
        (texts, videos, [texts, videos, F, D]) of at most `PAIR_CHUNK` pairs (see the module docstring)."""
        batch, frames, patches, _ = patch_emb.shape
        position = torch.arange(patches, device=patch_emb.device).expand(batch, frames, patches)
        norms = patch_emb.norm(dim=-1).clamp(min=1e-12)  # cosine scores without a normalised copy of the patches
        text_emb = text_emb.to(patch_emb.dtype)
        video_step = min(batch, VIDEO_CHUNK)
        text_step = max(1, PAIR_CHUNK // video_step)
        for v0 in range(0, batch, video_step):
            videos = slice(v0, v0 + video_step)
            keys, values = self._keys_values(patch_emb[videos], position[videos])
            keys, values = self._split_heads(keys.flatten(1, 2)), self._split_heads(values.flatten(1, 2))
            queries = self._queries(frame_emb[videos])  # [b, h, F, dh]; keys, values [b, h, F*P, dh]
            for t0 in range(0, len(text_emb), text_step):
                texts = slice(t0, t0 + text_step)
                scores = torch.einsum("bfpd,td->btfp", patch_emb[videos], text_emb[texts]) / norms[videos, None]
                top = scores.topk(self.keep, dim=-1).indices
                keep = torch.zeros_like(scores, dtype=torch.bool).scatter_(-1, top, True)
                keep = (keep & frame_mask[videos, None, :, None]).flatten(2)  # [b, t, F*P]; padded frames never
                pairs = keep.shape[1]
                # every (text, frame) query row of a video attends to that video's keys, masked to the text's choice
                mask = keep[:, None, :, None, :].expand(-1, -1, -1, frames, -1).flatten(2, 3)  # [b, 1, t*F, F*P]
                rows = queries[:, :, None].expand(-1, -1, pairs, -1, -1).flatten(2, 3)  # [b, h, t*F, dh]
                attended = F.scaled_dot_product_attention(rows, keys, values, attn_mask=mask)
                attended = attended.unflatten(2, (pairs, frames)).permute(2, 0, 3, 1, 4).flatten(-2)  # [t, b, F, w]
                yield texts, videos, frame_emb[videos] + self.up(attended)


class LowRankModulation(nn.Module):
    """[s_v, c_v, w_v] = softmax_t(G) W, rank-r along time: frames * (1 + s_v) + c_v, and frame weights
    softmax over the valid frames of w_v (times their count: mean 1, uniform at initialisation)."""

    def __init__(self, dim: int, knobs: RapKnobs):
        super().__init__()
        self.dim = dim
        self.ln = LayerNorm(dim)
        self.factor = nn.Linear(dim, knobs.rank)
        self.temporal_position = nn.Parameter(torch.randn(knobs.max_frames, knobs.rank) * 0.02)
        self.modulation = zero_init_linear(knobs.rank, 2 * dim + 1)

    def forward(self, frame_emb: torch.Tensor, frame_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """frame_emb [N, F, D], frame_mask [N, F] -> (modulated frames [N, F, D], frame weights [N, F])."""
        frames = frame_emb.shape[1]
        logits = self.factor(self.ln(frame_emb)) + self.temporal_position[:frames]
        logits = logits.masked_fill(~frame_mask.unsqueeze(-1), float("-inf"))
        valid = frame_mask.sum(1, keepdim=True).to(frame_emb.dtype)
        salience = logits.softmax(dim=1) * valid.unsqueeze(-1)  # mean 1 over the valid frames of each component
        scale, shift, weight = self.modulation(salience).split([self.dim, self.dim, 1], dim=-1)
        weights = weight.squeeze(-1).masked_fill(~frame_mask, float("-inf")).softmax(dim=1) * valid
        return frame_emb * (1 + scale) + shift, weights


class RapVideoHead(AdapterModule):
    """RAP's video head: ASA then LoRM on the frozen backbone's frame and patch embeddings, then weighted
    meanP."""

    needs_patch_tokens = True

    def __init__(self, dim: int, num_patches: int, knobs: RapKnobs):
        super().__init__()
        self.text_conditioned = knobs.selection == "text-conditioned"
        self.needs_patch_tokens = knobs.asa
        self.max_frames = knobs.max_frames
        self.salience_pooling = knobs.salience_pooling
        self.asa = AsynchronousSelfAttention(dim, num_patches, knobs) if knobs.asa else None
        self.lorm = LowRankModulation(dim, knobs) if knobs.lorm else None

    def _modulate_and_pool(self, frame_emb: torch.Tensor, frame_mask: torch.Tensor) -> torch.Tensor:
        weights = None
        if self.lorm is not None:
            frame_emb, weights = self.lorm(frame_emb, frame_mask)
        return masked_mean_pool(frame_emb, frame_mask, weights if self.salience_pooling else None)

    def forward(
        self,
        frame_emb: torch.Tensor,
        frame_mask: torch.Tensor,
        patch_emb: torch.Tensor | None = None,
        text_emb: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Video embeddings [B, D]; text-conditioned: one per (text, video) pair, [T, B, D]."""
        self._check_frames(frame_emb)
        if self.asa is None:  # nothing depends on the text: one embedding per video
            return self._modulate_and_pool(frame_emb, frame_mask)
        if not self.text_conditioned:
            scores = torch.einsum("bfpd,bfd->bfp", F.normalize(patch_emb, dim=-1), F.normalize(frame_emb, dim=-1))
            return self._modulate_and_pool(self.asa(frame_emb, patch_emb, frame_mask, scores), frame_mask)
        pooled = frame_emb.new_empty(len(text_emb), len(frame_emb), frame_emb.shape[-1], dtype=torch.float32)
        for texts, videos, block in self._pooled_blocks(frame_emb, frame_mask, patch_emb, text_emb):
            pooled[texts, videos] = block
        return pooled

    def text_similarity(
        self, frame_emb: torch.Tensor, frame_mask: torch.Tensor, patch_emb: torch.Tensor | None, text_emb: torch.Tensor
    ) -> torch.Tensor:
        """Cosine similarities [T, B] of texts to videos, each video pooled for each text, in blocks of at most
        `PAIR_CHUNK` pairs: memory does not grow with T x B beyond the [T, B] result."""
        self._check_frames(frame_emb)
        if self.asa is None:
            return text_emb.float() @ self._modulate_and_pool(frame_emb, frame_mask).T
        scores = text_emb.new_empty(len(text_emb), len(frame_emb), dtype=torch.float32)
        for texts, videos, block in self._pooled_blocks(frame_emb, frame_mask, patch_emb, text_emb):
            scores[texts, videos] = torch.einsum("td,tbd->tb", text_emb[texts].float(), block)
        return scores

    def _check_frames(self, frame_emb: torch.Tensor) -> None:
        if frame_emb.shape[1] > self.max_frames:
            raise ConfigError(f"RAP built for max_frames={self.max_frames} got {frame_emb.shape[1]} frames")

    def _pooled_blocks(
        self, frame_emb: torch.Tensor, frame_mask: torch.Tensor, patch_emb: torch.Tensor, text_emb: torch.Tensor
    ) -> Iterator[tuple[slice, slice, torch.Tensor]]:
        for texts, videos, refined in self.asa.per_text(frame_emb, patch_emb, frame_mask, text_emb):
            count, width = refined.shape[0], refined.shape[1]
            mask = frame_mask[videos].expand(count, -1, -1).flatten(0, 1)
            yield texts, videos, self._modulate_and_pool(refined.flatten(0, 1), mask).view(count, width, -1)


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
