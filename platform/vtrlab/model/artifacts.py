"""Adapter artifacts, the peft convention: `adapter_config.json` plus `adapter_model.safetensors`.

Only trainable tensors are saved (for full fine-tuning that is the whole backbone). The JSON records the
method, its knobs, the backbone name, weights and fingerprint, and the sha256 of the tensor file. Loading
never unpickles: safetensors holds raw tensors, the config is JSON. Files are written under a temporary
name and renamed, so an interrupted save never leaves a half-written artifact.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from vtrlab import __version__
from vtrlab.atomic import atomic_write
from vtrlab.errors import ArtifactError
from vtrlab.model.dual_encoder import VideoTextDualEncoder
from vtrlab.model.factory import create_model

CONFIG_NAME = "adapter_config.json"
WEIGHTS_NAME = "adapter_model.safetensors"
FORMAT_VERSION = 1


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def trainable_state_dict(encoder: VideoTextDualEncoder) -> dict[str, torch.Tensor]:
    """The tensors an artifact holds: every parameter that trains, detached, contiguous, on the CPU."""
    return {
        name: param.detach().cpu().contiguous() for name, param in encoder.named_parameters() if param.requires_grad
    }


def save_adapter(encoder: VideoTextDualEncoder, directory: str | os.PathLike, **extra: Any) -> Path:
    """Write the encoder's trainable tensors and config to `directory`; `extra` goes into the config."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    weights_path = directory / WEIGHTS_NAME
    atomic_write(weights_path, lambda tmp: save_file(trainable_state_dict(encoder), str(tmp)))
    config = {
        "format_version": FORMAT_VERSION,
        "vtrlab_version": __version__,
        "method": encoder.method,
        "knobs": encoder.knobs,
        "backbone": encoder.backbone.to_dict(),
        "weights_file": WEIGHTS_NAME,
        "weights_sha256": file_sha256(weights_path),
        **extra,
    }
    text = json.dumps(config, indent=2, sort_keys=True)
    atomic_write(directory / CONFIG_NAME, lambda tmp: tmp.write_text(text))
    return directory


def read_adapter_config(directory: str | os.PathLike) -> dict[str, Any]:
    """The artifact's JSON config, checked for the keys vtrlab needs."""
    path = Path(directory) / CONFIG_NAME
    if not path.is_file():
        raise ArtifactError(f"{path}: no adapter config; expected {CONFIG_NAME} and {WEIGHTS_NAME} here")
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ArtifactError(f"{path}: not valid JSON ({err})") from err
    missing = [key for key in ("method", "knobs", "backbone", "weights_sha256") if key not in config]
    if missing or not isinstance(config.get("backbone"), dict) or "fingerprint" not in config["backbone"]:
        raise ArtifactError(f"{path}: missing key(s) {missing or ['backbone.fingerprint']}")
    return config


def verify_checksum(directory: Path, config: dict[str, Any], origin: str | None = None) -> str:
    """The sha256 of the artifact's tensor file, which must equal `weights_sha256` in its config; errors
    name `origin` (default: the directory) and the file."""
    name = config.get("weights_file", WEIGHTS_NAME)
    label = origin or str(directory)
    path = directory / name
    if not path.is_file():
        raise ArtifactError(f"{label}: {name} is missing (the tensor file {CONFIG_NAME} names)")
    actual = file_sha256(path)
    if actual != config["weights_sha256"]:
        raise ArtifactError(
            f"{label}: {name} has {actual}, but {CONFIG_NAME} records {config['weights_sha256']} "
            "(checksum mismatch: corrupted or truncated file, or tampered with)"
        )
    return actual


def load_adapter_into(encoder: VideoTextDualEncoder, directory: str | os.PathLike) -> VideoTextDualEncoder:
    """Load an artifact's tensors into `encoder`, which must be built with the same method and knobs on the
    backbone the artifact was trained on (same fingerprint)."""
    directory = Path(directory)
    config = read_adapter_config(directory)
    expected = config["backbone"]["fingerprint"]
    if encoder.backbone.fingerprint != expected:
        raise ArtifactError(
            f"{directory}: adapter was trained on backbone {config['backbone']['name']!r} with weights "
            f"fingerprint {expected}, but this backbone ({encoder.backbone.name!r}, "
            f"{encoder.backbone.weights!r}) has {encoder.backbone.fingerprint}"
        )
    if encoder.method != config["method"] or encoder.knobs != config["knobs"]:
        raise ArtifactError(
            f"{directory}: artifact is {config['method']} {config['knobs']}; encoder is {encoder.method} "
            f"{encoder.knobs}"
        )
    verify_checksum(directory, config)
    weights_path = directory / config.get("weights_file", WEIGHTS_NAME)
    try:
        tensors = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as err:
        raise ArtifactError(f"{weights_path}: not a readable safetensors file ({err})") from err
    expected_names = set(trainable_state_dict(encoder))
    if set(tensors) != expected_names:
        missing = sorted(expected_names - set(tensors))[:5]
        unexpected = sorted(set(tensors) - expected_names)[:5]
        raise ArtifactError(f"{weights_path}: tensor names differ (missing {missing}, unexpected {unexpected})")
    params = dict(encoder.named_parameters())
    with torch.no_grad():
        for name, tensor in tensors.items():
            if params[name].shape != tensor.shape:
                raise ArtifactError(
                    f"{weights_path}: {name} has shape {tuple(tensor.shape)}, expected {tuple(params[name].shape)}"
                )
            params[name].copy_(tensor)
    return encoder


def load_adapter(
    directory: str | os.PathLike, weights: str | os.PathLike | None = None, backbone: str | None = None
) -> VideoTextDualEncoder:
    """Build the artifact's method on its backbone (or `backbone`) with `weights`, and load the adapter.

    `weights` defaults to what the artifact records; the fingerprint check refuses any other backbone.
    """
    config = read_adapter_config(directory)
    recorded = config["backbone"]
    encoder = create_model(
        config["method"],
        backbone or recorded["name"],
        weights if weights is not None else recorded.get("weights"),
        knobs=config["knobs"],
    )
    return load_adapter_into(encoder, directory)
