"""Small building blocks shared by the adapter methods."""

from __future__ import annotations

import torch
from open_clip.transformer import LayerNorm, QuickGELU, ResidualAttentionBlock
from torch import nn

__all__ = ["AdapterModule", "LayerNorm", "QuickGELU", "TinyTransformer", "zero_init_linear"]


class AdapterModule(nn.Module):
    """Marker base class: every parameter below an AdapterModule belongs to the method, not the backbone."""


def zero_init_linear(in_features: int, out_features: int, bias: bool = True) -> nn.Linear:
    """A linear layer whose weight (and bias) start at zero, so the branch it ends starts as the identity."""
    layer = nn.Linear(in_features, out_features, bias=bias)
    nn.init.zeros_(layer.weight)
    if bias:
        nn.init.zeros_(layer.bias)
    return layer


class TinyTransformer(nn.Module):
    """MV-Adapter's TRM: one pre-LN transformer block (open_clip's own block) of width d', QuickGELU MLP.

    `key_padding_mask` [B, L] (True = padded) and `causal` are turned into the additive mask that
    nn.MultiheadAttention's fused path takes.
    """

    def __init__(self, width: int, heads: int = 2, mlp_ratio: float = 4.0):
        super().__init__()
        if width % heads:
            raise ValueError(f"TRM width {width} is not divisible by its {heads} heads")
        self.heads = heads
        self.block = ResidualAttentionBlock(width, heads, mlp_ratio, act_layer=QuickGELU)

    @torch.no_grad()
    def init_from_tower(self, tower_width: int) -> None:
        """The MV-Adapter authors' initialisation (methods.md section 2.6): standard deviations from the width
        d of the tower the adapter sits in, not from the TRM's own width. Attention in-projection N(0, d^-0.5);
        attention out-projection, MLP fc and MLP proj N(0, (2d)^-0.5); biases and norms keep their defaults."""
        attn_std, proj_std = tower_width**-0.5, (2 * tower_width) ** -0.5
        nn.init.normal_(self.block.attn.in_proj_weight, std=attn_std)
        nn.init.normal_(self.block.attn.out_proj.weight, std=proj_std)
        nn.init.normal_(self.block.mlp.c_fc.weight, std=proj_std)
        nn.init.normal_(self.block.mlp.c_proj.weight, std=proj_std)

    def forward(
        self, x: torch.Tensor, key_padding_mask: torch.Tensor | None = None, causal: bool = False
    ) -> torch.Tensor:
        batch, length, _ = x.shape
        mask = None
        if causal:
            mask = torch.full((length, length), float("-inf"), device=x.device, dtype=x.dtype).triu_(1)
        if key_padding_mask is not None:
            pad = torch.zeros(batch, 1, length, device=x.device, dtype=x.dtype)
            pad = pad.masked_fill(key_padding_mask[:, None, :], float("-inf"))
            pad = pad.expand(batch, length, length)
            mask = pad if mask is None else pad + mask
            mask = mask.repeat_interleave(self.heads, dim=0)  # [B*H, L, L]
        return self.block(x, attn_mask=mask)
