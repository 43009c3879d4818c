"""Parameter counts and the parameter groups a training recipe gives their own learning rates."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from torch import nn

from vtrlab.model.dual_encoder import VideoTextDualEncoder


@dataclass(frozen=True)
class ParamCount:
    """`trainable_pct` is relative to the backbone (CLIP) alone, the papers' convention (methods.md section
    2.7: 2.34% to 2.42% for MV-Adapter's per-benchmark settings on ViT-B/16); `total` counts backbone plus
    method modules."""

    total: int
    backbone_params: int
    method_params: int
    trainable: int
    trainable_backbone: int
    trainable_pct: float

    def to_dict(self) -> dict[str, int | float]:
        return asdict(self)


def count_parameters(encoder: VideoTextDualEncoder) -> ParamCount:
    """Count parameters (shared tensors once) of the encoder, split into backbone and method parts."""
    method_names = getattr(encoder, "method_param_names", frozenset())
    named = dict(encoder.named_parameters())
    method = sum(p.numel() for n, p in named.items() if n in method_names)
    backbone = sum(p.numel() for n, p in named.items() if n not in method_names)
    trainable = sum(p.numel() for p in named.values() if p.requires_grad)
    trainable_backbone = sum(p.numel() for n, p in named.items() if p.requires_grad and n not in method_names)
    return ParamCount(
        total=backbone + method,
        backbone_params=backbone,
        method_params=method,
        trainable=trainable,
        trainable_backbone=trainable_backbone,
        trainable_pct=100.0 * trainable / backbone,
    )


def parameter_groups(encoder: VideoTextDualEncoder) -> dict[str, list[tuple[str, nn.Parameter]]]:
    """Trainable parameters by role: `method` (new modules), `backbone_bias` (CLIP biases a method
    unfroze), `backbone` (other CLIP tensors, full fine-tuning). Each role gets its own learning rate."""
    method_names = getattr(encoder, "method_param_names", frozenset())
    groups: dict[str, list[tuple[str, nn.Parameter]]] = {"method": [], "backbone_bias": [], "backbone": []}
    for name, param in encoder.named_parameters():
        if not param.requires_grad:
            continue
        if name in method_names:
            groups["method"].append((name, param))
        elif name.endswith("bias") and encoder.method != "full":
            groups["backbone_bias"].append((name, param))
        else:
            groups["backbone"].append((name, param))
    return groups
