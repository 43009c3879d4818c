"""MV-Adapter (Jin et al., CVPR 2024; methods.md section 2), as the authors' released code computes it.

Per block of both towers, an adapter sequential after the MLP: down-projection -> small transformer (TRM)
-> up-projection, with up zero-initialised so the model starts as frozen CLIP. The video branch adds the
Temporal Adaptation module with per-frame weight calibration of the CLS up-projection (section 2.4); Cross
Modality Tying (CMT) generates a scale for W_down of both towers' tied layers from one shared factor per
layer (section 2.5). Defaults are the authors'; each other reading is a knob (the table in section 2.9):

- `cls_value`: what frame i's CLS up-projection receives, times alpha_i: the TRM's CLS output
  (`"trm-cls"`, the authors') or the local context CLS + patch-mean output (`"local-context"`).
- `init` / `cmt_init`: the authors' initialisation (section 2.6) or library defaults / unit CMT scales.
- `lnin`: a LayerNorm on every adapter's input (the authors' ActivityNet configuration, both towers).
- A benchmark's CMT settings (section 2.5) apply to every knob a run leaves unset (`PAPER_SETTINGS`).
"""

from __future__ import annotations

from typing import Annotated, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from vtrlab.errors import ConfigError
from vtrlab.model.context import AdapterContext
from vtrlab.model.dual_encoder import VideoTextDualEncoder
from vtrlab.model.layers import AdapterModule, LayerNorm, QuickGELU, TinyTransformer, zero_init_linear
from vtrlab.model.methods.common import (
    attach_after_mlp,
    check_width,
    resolve_layers,
    tower_width,
    unfreeze_backbone_biases,
)
from vtrlab.model.methods.registry import Knobs, register_method

CmtMode = Literal["down-in", "down-out"]
ClsValue = Literal["trm-cls", "local-context"]
Init = Literal["authors", "library"]
CmtInit = Literal["authors", "identity"]

# The authors' per-benchmark settings (their configs/<benchmark>/<benchmark>.py; methods.md section 2.5).
# Tied layers count from the last block: on ViT-B's 12 blocks [-2, -1] are the authors' 10-11.
PAPER_SETTINGS: dict[str, dict[str, object]] = {
    "msrvtt": {"cmt_mode": "down-out", "cmt_layers": [-2, -1]},
    "didemo": {"cmt_mode": "down-out", "cmt_layers": [-2, -1]},
    "msvd": {"cmt_mode": "down-in", "cmt_layers": [-2, -1]},
    "lsmdc": {"cmt_mode": "down-in", "cmt_layers": [-3, -2, -1]},
    "activitynet": {"cmt_mode": "down-in", "cmt_layers": [-1], "lnin": True},
}


class MvAdapterKnobs(Knobs):
    width: Annotated[int, Field(gt=0, description="bottleneck width d' (64 for ViT-B, 128 for ViT-L)")] = 64
    scale: Annotated[float, Field(gt=0)] = 0.1
    trm: bool = True
    trm_heads: Annotated[int, Field(gt=0)] = 2
    calibration: bool = True
    calibration_shrink: Annotated[int, Field(gt=0, description="sigma: FC1 maps 2d' -> d'/sigma")] = 4
    cls_value: ClsValue = "trm-cls"
    cmt: bool = True
    cmt_factor_dim: Annotated[int, Field(gt=0)] = 32
    cmt_layers: Annotated[list[int], Field(min_length=1)] = [-2, -1]
    cmt_mode: CmtMode = "down-in"
    cmt_init: CmtInit = "authors"
    init: Init = "authors"
    lnin: bool = False
    max_frames: Annotated[int, Field(gt=0)] = 12
    max_words: Annotated[int, Field(gt=0)] = 32
    train_backbone_biases: bool = True


def _scaled_down_weight(down: nn.Linear, context: AdapterContext, key: str, mode: CmtMode) -> torch.Tensor:
    """W_down, scaled element-wise by this layer's CMT scale along its input or output channels."""
    scale = context.down_scales.get(key)
    if scale is None:
        return down.weight
    return down.weight * (scale.unsqueeze(0) if mode == "down-in" else scale.unsqueeze(1))


def _down_projection(dim: int, width: int, init: Init, std: float | None) -> nn.Linear:
    """d -> d'. The authors' init zeroes the bias and, with `std`, draws the weight from N(0, std)
    (text branch); without it the weight keeps PyTorch's Kaiming-uniform (video branch)."""
    down = nn.Linear(dim, width)
    if init == "authors":
        nn.init.zeros_(down.bias)
        if std is not None:
            nn.init.normal_(down.weight, std=std)
    return down


class WeightCalibration(nn.Module):
    """alpha_i = FC2(ReLU(FC1([local_i, CC_proj(CC')]))) + 1, FC2 zero-initialised (methods.md section 2.4)."""

    def __init__(self, width: int, shrink: int):
        super().__init__()
        hidden = max(1, width // shrink)
        self.cc_proj = nn.Linear(width, width)
        self.fc1 = nn.Linear(2 * width, hidden)
        self.fc2 = zero_init_linear(hidden, width, bias=False)

    def forward(self, global_ctx: torch.Tensor, local_ctx: torch.Tensor) -> torch.Tensor:
        """global_ctx [B, d'], local_ctx [B, F, d'] -> alpha [B, F, d']."""
        cc = self.cc_proj(global_ctx).unsqueeze(1).expand_as(local_ctx)
        return self.fc2(F.relu(self.fc1(torch.cat([local_ctx, cc], dim=-1)))) + 1.0


class MvVideoAdapter(AdapterModule):
    """The video-branch adapter of one visual block: Temporal Adaptation with weight calibration."""

    def __init__(self, dim: int, knobs: MvAdapterKnobs, context: AdapterContext, key: str):
        super().__init__()
        width = knobs.width
        self.scale, self.key, self.cmt_mode = knobs.scale, key, knobs.cmt_mode
        self.max_frames, self.cls_value = knobs.max_frames, knobs.cls_value
        self.use_trm = knobs.trm
        self._context = [context]  # a list, so nn.Module does not treat it as state
        self.ln_in = LayerNorm(dim) if knobs.lnin else None
        self.down = _down_projection(dim, width, knobs.init, std=None)
        self.act = QuickGELU()
        self.up = zero_init_linear(width, dim)
        if self.use_trm:
            self.class_of_classes = nn.Parameter(torch.randn(width) * width**-0.5)
            self.positional_embedding = nn.Parameter(torch.randn(1 + 2 * knobs.max_frames, width) * 0.01)
            self.ln = LayerNorm(width)
            self.trm = TinyTransformer(width, knobs.trm_heads)
            if knobs.init == "authors":
                self.trm.init_from_tower(dim)
        self.calibrate = WeightCalibration(width, knobs.calibration_shrink) if knobs.calibration else None

    def _temporal(
        self, cls: torch.Tensor, patch_mean: torch.Tensor, frame_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(global context CC' [B, d'], CLS outputs [B, F, d'], patch-mean outputs [B, F, d']); without the
        TRM, CC' is the masked mean of the frames' CLS tokens and the outputs are the inputs."""
        batch, frames, _ = cls.shape
        if not self.use_trm:
            weights = frame_mask.to(cls.dtype).unsqueeze(-1)
            return (cls * weights).sum(1) / weights.sum(1), cls, patch_mean
        table = self.positional_embedding  # rows: [CC, CLS_1..CLS_max_frames, patchmean_1..patchmean_max_frames]
        positions = torch.cat(
            [table[:1], table[1 : frames + 1], table[1 + self.max_frames : 1 + self.max_frames + frames]]
        )  # slicing, not indexing with a host tensor: no host-to-device copy (or sync) per block
        sequence = torch.cat([self.class_of_classes.expand(batch, 1, -1).to(cls.dtype), cls, patch_mean], 1)
        sequence = self.ln(sequence + positions.to(cls.dtype))
        padding = torch.cat([frame_mask.new_zeros(batch, 1), ~frame_mask, ~frame_mask], dim=1)
        out = self.act(self.trm(sequence, key_padding_mask=padding))
        return out[:, 0], out[:, 1 : frames + 1], out[:, frames + 1 :]

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        context = self._context[0]
        frame_mask = context.frame_mask
        frames = context.num_frames
        if frames > self.max_frames and self.use_trm:
            raise ConfigError(f"MV-Adapter built for max_frames={self.max_frames} got {frames} frames")
        tokens, dim = hidden.shape[1], hidden.shape[2]
        x = self.ln_in(hidden) if self.ln_in is not None else hidden
        weight = _scaled_down_weight(self.down, context, self.key, self.cmt_mode)
        low = self.act(F.linear(x, weight, self.down.bias)).view(-1, frames, tokens, self.down.out_features)
        cls, patches = low[:, :, 0], low[:, :, 1:]
        global_ctx, cls_out, patch_out = self._temporal(cls, patches.mean(dim=2), frame_mask)
        local_ctx = cls_out + patch_out
        cls_in = cls_out if self.cls_value == "trm-cls" else local_ctx
        if self.calibrate is not None:
            # W_up with input channels scaled by alpha_i == W_up applied to alpha_i * value: one batched matmul
            cls_in = cls_in * self.calibrate(global_ctx, local_ctx)
        up_in = torch.cat([cls_in.unsqueeze(2), patches], dim=2).view(-1, tokens, low.shape[-1])
        return hidden + self.scale * self.up(up_in).view(-1, tokens, dim)


class MvTextAdapter(AdapterModule):
    """The text-branch adapter of one text block: down, positions, LN, causal TRM, QuickGELU, up."""

    def __init__(self, dim: int, knobs: MvAdapterKnobs, context: AdapterContext, key: str):
        super().__init__()
        width = knobs.width
        self.scale, self.key, self.cmt_mode = knobs.scale, key, knobs.cmt_mode
        self._context = [context]
        self.ln_in = LayerNorm(dim) if knobs.lnin else None
        self.down = _down_projection(dim, width, knobs.init, std=(2 * dim) ** -0.5)
        self.positional_embedding = nn.Parameter(torch.randn(knobs.max_words, width) * 0.01)
        self.ln = LayerNorm(width)
        self.trm = TinyTransformer(width, knobs.trm_heads) if knobs.trm else None
        if self.trm is not None and knobs.init == "authors":
            self.trm.init_from_tower(dim)
        self.act = QuickGELU()
        self.up = zero_init_linear(width, dim)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        length = hidden.shape[1]
        if length > self.positional_embedding.shape[0]:
            raise ConfigError(
                f"MV-Adapter built for max_words={self.positional_embedding.shape[0]} got {length} tokens"
            )
        x = self.ln_in(hidden) if self.ln_in is not None else hidden
        weight = _scaled_down_weight(self.down, self._context[0], self.key, self.cmt_mode)
        low = F.linear(x, weight, self.down.bias) + self.positional_embedding[:length].to(hidden.dtype)
        low = self.ln(low)
        if self.trm is not None:
            low = self.trm(low, causal=True)
        return hidden + self.scale * self.up(self.act(low))


class CrossModalityTying(AdapterModule):
    """One shared factor f per tied layer; per tower a linear map M(f) gives W_down's scale vector.

    `init="authors"`: f starts at zero and M at PyTorch's default Linear init, so a tied scale starts at M's
    bias; `init="identity"`: f ~ N(0, 1) and M has zero weight and unit bias, so every scale starts at 1.
    """

    def __init__(self, pairs: list[tuple[int, int]], factor_dim: int, visual_dim: int, text_dim: int, init: CmtInit):
        super().__init__()
        self.pairs = pairs
        factors = torch.zeros(len(pairs), factor_dim) if init == "authors" else torch.randn(len(pairs), factor_dim)
        self.factors = nn.Parameter(factors)
        self.visual_maps = nn.ModuleList(self._map(factor_dim, visual_dim, init) for _ in pairs)
        self.text_maps = nn.ModuleList(self._map(factor_dim, text_dim, init) for _ in pairs)

    @staticmethod
    def _map(factor_dim: int, out_dim: int, init: CmtInit) -> nn.Linear:
        if init == "authors":
            return nn.Linear(factor_dim, out_dim)
        layer = zero_init_linear(factor_dim, out_dim)
        nn.init.ones_(layer.bias)
        return layer

    def forward(self) -> dict[str, torch.Tensor]:
        scales = {}
        for i, (visual_layer, text_layer) in enumerate(self.pairs):
            scales[f"visual.{visual_layer}"] = self.visual_maps[i](self.factors[i])
            scales[f"text.{text_layer}"] = self.text_maps[i](self.factors[i])
        return scales


@register_method(
    "mv-adapter",
    MvAdapterKnobs,
    "MV-Adapter: bottleneck+TRM adapters in both towers, temporal calibration, cross-modality tying",
    benchmark_knobs=PAPER_SETTINGS,
)
def apply_mv_adapter(encoder: VideoTextDualEncoder, knobs: MvAdapterKnobs) -> None:
    check_width(knobs.width, encoder, ("visual", "text"), "width")
    if knobs.trm and knobs.width % knobs.trm_heads:
        raise ConfigError(f"knob width={knobs.width} must be divisible by trm_heads={knobs.trm_heads}")
    for tower, blocks, adapter_cls in (
        ("visual", encoder.visual_blocks, MvVideoAdapter),
        ("text", encoder.text_blocks, MvTextAdapter),
    ):
        dim = tower_width(encoder, tower)
        for index, block in enumerate(blocks):
            attach_after_mlp(block, adapter_cls(dim, knobs, encoder.context, f"{tower}.{index}"))
    if knobs.cmt:
        visual_layers = resolve_layers(knobs.cmt_layers, len(encoder.visual_blocks), "cmt_layers")
        text_layers = resolve_layers(knobs.cmt_layers, len(encoder.text_blocks), "cmt_layers")
        down_in = knobs.cmt_mode == "down-in"
        encoder.cmt = CrossModalityTying(
            list(zip(visual_layers, text_layers, strict=True)),
            knobs.cmt_factor_dim,
            tower_width(encoder, "visual") if down_in else knobs.width,
            tower_width(encoder, "text") if down_in else knobs.width,
            knobs.cmt_init,
        )
    if knobs.train_backbone_biases:
        unfreeze_backbone_biases(encoder)
