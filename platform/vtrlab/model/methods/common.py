"""Helpers the methods share: layer selection, tower selection, MLP-output adapters, bias unfreezing."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from torch import nn

from vtrlab.errors import ConfigError
from vtrlab.model.dual_encoder import VideoTextDualEncoder

Tower = Literal["visual", "text"]
TowerChoice = Literal["both", "visual", "text"]
ADAPTER_ATTR = "vtr_adapter"


def towers_of(choice: TowerChoice) -> tuple[Tower, ...]:
    return ("visual", "text") if choice == "both" else (choice,)


def tower_blocks(encoder: VideoTextDualEncoder, tower: Tower) -> nn.ModuleList:
    return encoder.visual_blocks if tower == "visual" else encoder.text_blocks


def tower_width(encoder: VideoTextDualEncoder, tower: Tower) -> int:
    return int(tower_blocks(encoder, tower)[0].ln_1.normalized_shape[0])


def resolve_layers(layers: Sequence[int] | None, depth: int, knob: str) -> list[int]:
    """Block indices from a knob: None means every block; negative indices count from the last block."""
    if layers is None:
        return list(range(depth))
    resolved = []
    for index in layers:
        if not -depth <= index < depth:
            raise ConfigError(f"knob {knob}: layer {index} is outside this tower's 0..{depth - 1}")
        resolved.append(index % depth)
    if len(set(resolved)) != len(resolved):
        raise ConfigError(f"knob {knob}: layers {list(layers)} name the same block twice")
    return sorted(resolved)


def check_width(value: int, encoder: VideoTextDualEncoder, towers: Sequence[Tower], knob: str) -> None:
    """A bottleneck width or rank may not exceed the width of the tower it adapts."""
    for tower in towers:
        width = tower_width(encoder, tower)
        if value > width:
            raise ConfigError(
                f"knob {knob}={value} is larger than the {tower} tower's width {width} of backbone "
                f"{encoder.backbone.name!r}; allowed: 1..{width}"
            )


def attach_after_mlp(block: nn.Module, adapter: nn.Module) -> None:
    """Run `adapter` on the block's MLP output (sequential placement: x + MLP(LN(x)) + s * A(MLP(LN(x)))).

    The adapter is appended to the MLP's nn.Sequential, so frozen parameter names are unchanged and the
    adapter's own ones appear as `...mlp.vtr_adapter.*`; the adapter returns h + s * f(h) itself.
    """
    if not isinstance(block.mlp, nn.Sequential):
        raise ConfigError(f"cannot attach an adapter after {type(block.mlp).__name__}: expected nn.Sequential")
    if hasattr(block.mlp, ADAPTER_ATTR):
        raise ConfigError("this block already has an adapter after its MLP; build a fresh model per method")
    block.mlp.add_module(ADAPTER_ATTR, adapter)


def unfreeze_backbone_biases(encoder: VideoTextDualEncoder) -> int:
    """Make every bias of the frozen CLIP trainable (MV-Adapter's released recipe); returns how many."""
    count = 0
    for name, param in encoder.clip.named_parameters():
        if name.endswith("bias") and f".{ADAPTER_ATTR}." not in name:
            param.requires_grad_(True)
            count += param.numel()
    return count
