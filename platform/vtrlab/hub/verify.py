"""The backbone check a pulled adapter passes before anyone uses it: the weights fingerprint against the one
the adapter was trained on (the tensor file's checksum is `vtrlab.model.artifacts.verify_checksum`)."""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

from vtrlab.errors import ArtifactError, ConfigError

if TYPE_CHECKING:
    from torch import nn

    from vtrlab.model.adapter_config import AdapterConfig
    from vtrlab.model.backbone import BackboneInfo


def verify_backbone(
    config: AdapterConfig, weights: str | os.PathLike | None = None, origin: str = "adapter"
) -> tuple[nn.Module, BackboneInfo]:
    """Load the backbone the config records, with `weights` (default: the recorded weights) and the recorded
    MLP activation, and check its fingerprint against the recorded one; returns the loaded backbone."""
    from vtrlab.logs import quiet_root_logger
    from vtrlab.model.adapter_config import cut, shorten
    from vtrlab.model.backbone import load_backbone

    recorded = config.backbone
    name, expected = recorded.name, recorded.fingerprint
    chosen = str(weights) if weights is not None else recorded.weights
    try:
        with quiet_root_logger(logging.ERROR):
            clip, info = load_backbone(name, chosen, quick_gelu=recorded.quick_gelu)
    except ConfigError as err:
        if weights is not None:
            raise
        raise ConfigError(
            f"{origin}: cannot load the backbone it records ({shorten(name)} with weights {shorten(chosen)}): "
            f"{cut(str(err), 600)}; pass the same weights with --weights (weights=)"
        ) from err
    if info.fingerprint != expected:
        raise ArtifactError(
            f"{origin}: trained on backbone {shorten(name)} with weights fingerprint {expected}, but weights "
            f"{shorten(chosen)} have fingerprint {info.fingerprint}; pass the weights it was trained on "
            f"({shorten(recorded.weights)})"
        )
    return clip, info
