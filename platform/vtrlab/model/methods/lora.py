"""LoRA on the attention projections (q, k, v and optionally out) of both towers."""

from __future__ import annotations

import math
from typing import Annotated, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from vtrlab.errors import ConfigError
from vtrlab.model.dual_encoder import VideoTextDualEncoder
from vtrlab.model.layers import AdapterModule
from vtrlab.model.methods.common import (
    TowerChoice,
    check_width,
    resolve_layers,
    tower_blocks,
    towers_of,
    unfreeze_backbone_biases,
)
from vtrlab.model.methods.registry import Knobs, register_method

Projection = Literal["q", "k", "v", "out"]
QKV_INDEX = {"q": 0, "k": 1, "v": 2}


class LoraKnobs(Knobs):
    rank: Annotated[int, Field(gt=0)] = 8
    alpha: Annotated[float, Field(gt=0, description="scaling = alpha / rank")] = 16.0
    targets: Annotated[list[Projection], Field(min_length=1)] = ["q", "k", "v"]
    towers: TowerChoice = "both"
    layers: list[int] | None = None
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.0
    train_backbone_biases: bool = False


class LoraAttention(AdapterModule):
    """nn.MultiheadAttention (frozen, kept as `base`) plus low-rank deltas on the chosen projections.

    Deltas are applied to activations (x A^T B^T, as peft does) rather than merged into the weights, and
    attention runs through fused scaled_dot_product_attention. B starts at zero, so the module starts equal
    to the frozen attention.
    """

    def __init__(self, base: nn.MultiheadAttention, rank: int, alpha: float, targets: list[str], dropout: float):
        super().__init__()
        if not base.batch_first or not base._qkv_same_embed_dim:
            raise ConfigError("LoRA needs batch-first attention with a fused in-projection (open_clip ViTs)")
        dim = base.embed_dim
        self.base = base
        self.num_heads = base.num_heads
        self.scaling = alpha / rank
        self.qkv_targets = [QKV_INDEX[t] for t in ("q", "k", "v") if t in targets]
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("qkv_index", torch.tensor(self.qkv_targets, dtype=torch.long), persistent=False)
        count = len(self.qkv_targets)
        self.qkv_A = nn.Parameter(torch.empty(count * rank, dim)) if count else None
        self.qkv_B = nn.Parameter(torch.zeros(count, dim, rank)) if count else None
        self.out_A = nn.Parameter(torch.empty(rank, dim)) if "out" in targets else None
        self.out_B = nn.Parameter(torch.zeros(dim, rank)) if "out" in targets else None
        for weight in (self.qkv_A, self.out_A):
            if weight is not None:
                nn.init.kaiming_uniform_(weight, a=math.sqrt(5))

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        need_weights: bool = False,
        attn_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, None]:
        if key is not query or value is not query:
            raise ValueError("LoraAttention supports self-attention only")
        batch, length, dim = query.shape
        qkv = F.linear(query, self.base.in_proj_weight, self.base.in_proj_bias)
        if self.qkv_A is not None:
            low = (self.dropout(query) @ self.qkv_A.T).view(batch, length, len(self.qkv_targets), -1)
            delta = torch.einsum("bltr,tdr->bltd", low, self.qkv_B) * self.scaling
            qkv = qkv.view(batch, length, 3, dim).index_add(2, self.qkv_index, delta).view(batch, length, -1)
        heads = qkv.view(batch, length, 3, self.num_heads, dim // self.num_heads).permute(2, 0, 3, 1, 4)
        if attn_mask is not None and attn_mask.dim() == 3:
            attn_mask = attn_mask.view(batch, self.num_heads, length, length)
        attended = F.scaled_dot_product_attention(heads[0], heads[1], heads[2], attn_mask=attn_mask)
        attended = attended.transpose(1, 2).reshape(batch, length, dim)
        out = F.linear(attended, self.base.out_proj.weight, self.base.out_proj.bias)
        if self.out_A is not None:
            out = out + (self.dropout(attended) @ self.out_A.T @ self.out_B.T) * self.scaling
        return out, None


@register_method("lora", LoraKnobs, "LoRA on attention q,k,v(,out) of both towers (rank)")
def apply_lora(encoder: VideoTextDualEncoder, knobs: LoraKnobs) -> None:
    towers = towers_of(knobs.towers)
    check_width(knobs.rank, encoder, towers, "rank")
    for tower in towers:
        blocks = tower_blocks(encoder, tower)
        for index in resolve_layers(knobs.layers, len(blocks), "layers"):
            block = blocks[index]
            block.attn = LoraAttention(block.attn, knobs.rank, knobs.alpha, list(knobs.targets), knobs.dropout)
    if knobs.train_backbone_biases:
        unfreeze_backbone_biases(encoder)
