"""`vtrlab.load("MODEL@ALIAS")`: a registered adapter, ready to use. Versions are pulled once into
`$VTRLAB_HOME/models/<model>/v<version>` and reused while their checksum holds."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING

from vtrlab.errors import ArtifactError
from vtrlab.hub.pull import PulledAdapter, cache_lock, open_registry, pull_version, version_metrics
from vtrlab.hub.reference import ModelReference, resolve_version
from vtrlab.hub.verify import verify_backbone
from vtrlab.paths import vtrlab_home

if TYPE_CHECKING:
    import torch

    from vtrlab.model.dual_encoder import VideoTextDualEncoder
    from vtrlab.tracking.records import VersionRecord


def cache_dir(model: str, version: str) -> Path:
    """Where `load` keeps a pulled version: $VTRLAB_HOME/models/<model>/v<version>."""
    return vtrlab_home() / "models" / model / f"v{version}"


def load(
    reference: str | ModelReference,
    weights: str | os.PathLike | None = None,
    tracking_uri: str | None = None,
    device: str | torch.device = "cpu",
) -> VideoTextDualEncoder:
    """The dual encoder of the registered adapter `reference` (`MODEL@ALIAS`, `MODEL/VERSION`, `MODEL` =
    champion) on its backbone (loaded with `weights`, default the recorded ones), in eval mode on `device`."""
    encoder, _ = load_pulled(reference, weights, tracking_uri, device)
    return encoder


def load_pulled(
    reference: str | ModelReference,
    weights: str | os.PathLike | None = None,
    tracking_uri: str | None = None,
    device: str | torch.device = "cpu",
) -> tuple[VideoTextDualEncoder, PulledAdapter]:
    """`load`, also returning what the pull recorded (version, aliases, metrics, the run's parameters).

    The model is built from the artifact's own config (method, knobs, backbone and its activation), and
    carries the artifact's evaluation settings as `encoder.evaluation` (`vtrlab.model.artifacts`)."""
    from vtrlab.model.artifacts import load_adapter_into, read_adapter_config
    from vtrlab.model.factory import create_model

    tracker = open_registry(tracking_uri)
    version = resolve_version(tracker, reference)
    directory = cache_dir(version.model, version.version)
    with cache_lock(directory):  # concurrent first loads: one pulls, the others then reuse its copy
        pulled = _reusable(directory, version)
        if pulled is not None:
            config = read_adapter_config(directory)
            origin = f"{version.model} version {version.version} ({directory})"
            clip, info = verify_backbone(config, weights, origin)
            encoder = create_model(config.method, info.name, knobs=config.knobs, clip=clip, backbone_info=info)
            load_adapter_into(encoder, directory)  # checksum, backbone, method, knobs and tensors once more
        else:
            pulled, encoder = pull_version(tracker, version, directory, weights)  # loaded by the pull's check
    return encoder.to(device).eval(), pulled


def _reusable(directory: Path, version: VersionRecord) -> PulledAdapter | None:
    """The earlier pull in `directory` if it is of this very version and its tensors are intact, with the
    registry's current aliases and tags; else None (pull again)."""
    from vtrlab.model.artifacts import read_adapter_config, verify_checksum

    if not directory.is_dir():
        return None
    try:
        pulled = PulledAdapter.read(directory)
        same = (pulled.model, pulled.version, pulled.run_id, pulled.source) == (
            version.model,
            version.version,
            version.run_id,
            version.source,
        )
        if not same:
            return None
        verify_checksum(directory, read_adapter_config(directory))
    except ArtifactError:
        return None
    tags = dict(version.tags)
    return dataclasses.replace(pulled, aliases=sorted(version.aliases), tags=tags, metrics=version_metrics(tags))
