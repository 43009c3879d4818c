"""Plain bottleneck adapters (AdaptFormer-style), sequential after every block's MLP, no temporal modelling."""

from __future__ import annotations

from typing import Annotated

import torch
from pydantic import Field
from torch import nn

from vtrlab.model.dual_encoder import VideoTextDualEncoder
from vtrlab.model.layers import AdapterModule, zero_init_linear
from vtrlab.model.methods.common import (
    TowerChoice,
    attach_after_mlp,
    check_width,
    resolve_layers,
    tower_blocks,
    tower_width,
    towers_of,
    unfreeze_backbone_biases,
)
from vtrlab.model.methods.registry import Knobs, register_method


class BottleneckKnobs(Knobs):
    width: Annotated[int, Field(gt=0, description="bottleneck width d'")] = 64
    scale: Annotated[float, Field(gt=0)] = 0.1
    towers: TowerChoice = "both"
    layers: list[int] | None = None
    train_backbone_biases: bool = False


class BottleneckAdapter(AdapterModule):
    """h + s * up(ReLU(down(h))), up zero-initialised."""

    def __init__(self, dim: int, width: int, scale: float):
        super().__init__()
        self.scale = scale
        self.down = nn.Linear(dim, width)
        self.act = nn.ReLU()
        self.up = zero_init_linear(width, dim)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden + self.scale * self.up(self.act(self.down(hidden)))


@register_method("bottleneck", BottleneckKnobs, "bottleneck adapter after each MLP (width); no temporal model")
def apply_bottleneck(encoder: VideoTextDualEncoder, knobs: BottleneckKnobs) -> None:
    towers = towers_of(knobs.towers)
    check_width(knobs.width, encoder, towers, "width")
    for tower in towers:
        blocks = tower_blocks(encoder, tower)
        dim = tower_width(encoder, tower)
        for index in resolve_layers(knobs.layers, len(blocks), "layers"):
            attach_after_mlp(blocks[index], BottleneckAdapter(dim, knobs.width, knobs.scale))
    if knobs.train_backbone_biases:
        unfreeze_backbone_biases(encoder)
