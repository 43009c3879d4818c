"""The two baselines without new modules: zero-shot CLIP (meanP) and full fine-tuning (CLIP4Clip meanP)."""

from __future__ import annotations

from vtrlab.model.dual_encoder import VideoTextDualEncoder
from vtrlab.model.methods.registry import Knobs, register_method


class ZeroShotKnobs(Knobs):
    """Zero-shot CLIP has no knobs: nothing trains."""


class FullKnobs(Knobs):
    """Full fine-tuning trains every backbone tensor (CLIP lr 1e-7 in the recipe); the logit scale stays
    frozen, as in MV-Adapter's protocol."""


@register_method("zero-shot", ZeroShotKnobs, "frozen CLIP, meanP over frames; nothing trains")
def apply_zero_shot(encoder: VideoTextDualEncoder, knobs: ZeroShotKnobs) -> None:
    encoder.clip.requires_grad_(False)


@register_method("full", FullKnobs, "full fine-tuning of both towers (CLIP4Clip meanP)")
def apply_full(encoder: VideoTextDualEncoder, knobs: FullKnobs) -> None:
    encoder.clip.requires_grad_(True)
    encoder.clip.logit_scale.requires_grad_(False)
