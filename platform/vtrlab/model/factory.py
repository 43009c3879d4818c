"""`create_model`: a frozen backbone wrapped as a dual encoder, with a method's modules injected."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from torch import nn

from vtrlab.logs import quiet_root_logger
from vtrlab.model.backbone import BackboneInfo, load_backbone
from vtrlab.model.dual_encoder import VideoTextDualEncoder
from vtrlab.model.methods import get_method, parse_knobs


def apply_method(
    encoder: VideoTextDualEncoder, method: str, knobs: Mapping[str, Any] | None = None, source: str = "knobs"
) -> VideoTextDualEncoder:
    """Inject `method` with validated `knobs` into a freshly built encoder (still zero-shot)."""
    if encoder.method != "zero-shot" or any(p.requires_grad for p in encoder.parameters()):
        raise RuntimeError("apply_method expects a fresh zero-shot encoder; build a new one per method")
    entry = get_method(method)
    parsed = parse_knobs(method, knobs, source=source)
    backbone_params = {id(p) for p in encoder.clip.parameters()}
    entry.apply(encoder, parsed)
    encoder.method = method
    encoder.knobs = parsed.model_dump()
    for param in encoder.parameters():
        if id(param) not in backbone_params:
            param.requires_grad_(True)
    encoder.method_param_names = frozenset(
        name for name, param in encoder.named_parameters() if id(param) not in backbone_params
    )
    return encoder


def create_model(
    method: str = "zero-shot",
    backbone: str = "vtr-tiny",
    weights: str | os.PathLike | None = None,
    knobs: Mapping[str, Any] | None = None,
    clip: nn.Module | None = None,
    backbone_info: BackboneInfo | None = None,
    quick_gelu: bool | None = None,
) -> VideoTextDualEncoder:
    """Build the video-text dual encoder for `method` on open_clip `backbone` loaded with `weights` (and
    `quick_gelu`, see `vtrlab.model.backbone`).

    Knobs are validated first, so a typo fails before a large backbone is loaded. Pass `clip` and
    `backbone_info` to reuse a backbone already in memory (it is used as is, not copied).
    """
    get_method(method)
    parse_knobs(method, knobs)
    if clip is None:
        with quiet_root_logger(logging.ERROR):  # open_clip warns on random init; the artifact records it
            clip, backbone_info = load_backbone(backbone, weights, quick_gelu=quick_gelu)
    assert backbone_info is not None, "pass backbone_info with clip"
    encoder = VideoTextDualEncoder(clip, backbone_info)
    return apply_method(encoder, method, knobs)
