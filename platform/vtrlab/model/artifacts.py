"""Adapter artifacts, the peft convention: `adapter_config.json` plus `adapter_model.safetensors`.

Only trainable tensors are saved (for full fine-tuning that is the whole backbone). The JSON (typed in
`vtrlab.model.adapter_config`, methods.md section 6) records the method, its knobs, the backbone (name,
weights, fingerprint, MLP activation, image size), the sha256 of the tensor file and the settings the adapter
was evaluated with. Loading never unpickles: safetensors holds raw tensors, the config is JSON; the tensor
file must lie inside the artifact folder and hold finite values. Files are written under a temporary name
and renamed, so an interrupted save never leaves a half-written artifact.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from vtrlab import __version__
from vtrlab.atomic import atomic_write
from vtrlab.errors import ArtifactError, ConfigError
from vtrlab.model.adapter_config import (
    CONFIG_NAME,
    FORMAT_VERSION,
    WEIGHTS_NAME,
    AdapterConfig,
    EvaluationSettings,
    cut,
    evaluation_settings,
    read_adapter_config,
    shorten,
    weights_path,
)

if TYPE_CHECKING:  # the model code imports open_clip (and torchvision): only `load_adapter` needs it at run time,
    # so processes that only verify or register artifacts (Tune's trial actors) do not pay for it
    from vtrlab.model.dual_encoder import VideoTextDualEncoder

__all__ = [
    "CONFIG_NAME",
    "FORMAT_VERSION",
    "WEIGHTS_NAME",
    "AdapterConfig",
    "EvaluationSettings",
    "check_backbone",
    "evaluation_settings",
    "file_sha256",
    "load_adapter",
    "load_adapter_into",
    "read_adapter_config",
    "save_adapter",
    "trainable_state_dict",
    "verify_checksum",
]


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


def save_adapter(
    encoder: VideoTextDualEncoder,
    directory: str | os.PathLike,
    evaluation: EvaluationSettings | None = None,
    **extra: Any,
) -> Path:
    """Write the encoder's trainable tensors and config to `directory`: `evaluation` records how the adapter
    is evaluated (the training loop always passes it; an artifact without it saves, but every consumer
    refuses it through `evaluation_settings`); `extra` goes into the config as it is."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    weights = directory / WEIGHTS_NAME
    atomic_write(weights, lambda tmp: save_file(trainable_state_dict(encoder), str(tmp)))
    config = AdapterConfig(
        format_version=FORMAT_VERSION,
        vtrlab_version=__version__,
        method=encoder.method,
        knobs=encoder.knobs,
        backbone=encoder.backbone.to_dict(),
        weights_file=WEIGHTS_NAME,
        weights_sha256=file_sha256(weights),
        evaluation=evaluation,
        **extra,
    )
    text = config.to_json()
    atomic_write(directory / CONFIG_NAME, lambda tmp: tmp.write_text(text))
    return directory


def verify_checksum(directory: str | os.PathLike, config: AdapterConfig, origin: str | None = None) -> str:
    """The sha256 of the artifact's tensor file, which must lie inside `directory` and equal `weights_sha256`
    in its config; errors name `origin` (default: the directory) and the file."""
    directory = Path(directory)
    label = origin or str(directory)
    path = weights_path(directory, config, label)
    try:
        actual = file_sha256(path)
    except OSError as err:
        raise ArtifactError(f"{label}: {shorten(config.weights_file)}: cannot read ({err.strerror or err})") from None
    if actual != config.weights_sha256:
        raise ArtifactError(
            f"{label}: {config.weights_file} has {actual}, but {CONFIG_NAME} records {config.weights_sha256} "
            "(checksum mismatch with key weights_sha256: corrupted or truncated file, or tampered with)"
        )
    return actual


def check_backbone(encoder: VideoTextDualEncoder, config: AdapterConfig) -> None:
    """Refuse an encoder whose backbone differs from the recorded one: weights fingerprint, MLP activation
    (the fingerprint does not cover it) and input size; errors name the file, the key and the values."""
    recorded, actual = config.backbone, encoder.backbone
    source = config.source
    if actual.fingerprint != recorded.fingerprint:
        raise ArtifactError(
            f"{source}: adapter was trained on backbone {shorten(recorded.name)} with weights fingerprint "
            f"{recorded.fingerprint} (key backbone.fingerprint), but this backbone ({shorten(actual.name)}, "
            f"{shorten(actual.weights)}) has {actual.fingerprint}"
        )
    if actual.activation != recorded.activation:
        raise ArtifactError(
            f"{source}: key backbone.activation is {recorded.activation!r} but this backbone was built with "
            f"{actual.activation!r} MLPs (allowed: 'quick_gelu', 'gelu'); build it with "
            f"quick_gelu={recorded.quick_gelu}"
        )
    if tuple(actual.image_size) != tuple(recorded.image_size):
        raise ArtifactError(
            f"{source}: key backbone.image_size is {list(recorded.image_size)} but this backbone takes "
            f"{list(actual.image_size)} pixels"
        )


def _read_tensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of an artifact's safetensors file, all floating-point ones finite; ArtifactError naming
    the file (and the tensor) otherwise. Never unpickles."""
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise ArtifactError(f"{path}: not a readable safetensors file ({shorten(str(err))})") from None
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise ArtifactError(f"{path}: tensor {shorten(name)} holds {bad} non-finite value(s) (NaN or inf)")
    return tensors


def load_adapter_into(encoder: VideoTextDualEncoder, directory: str | os.PathLike) -> VideoTextDualEncoder:
    """Load an artifact's tensors into `encoder`, which must be built with the same method and knobs on the
    backbone the artifact was trained on (same fingerprint, activation and image size). The encoder then
    carries the artifact's evaluation settings (`evaluation_settings`: refused if it records none) as
    `encoder.evaluation`."""
    directory = Path(directory)
    config = read_adapter_config(directory)
    evaluation = evaluation_settings(config)
    check_backbone(encoder, config)
    if encoder.method != config.method or encoder.knobs != config.knobs:
        raise ArtifactError(
            f"{config.source}: artifact is {config.method} {shorten(config.knobs)}; encoder is {encoder.method} "
            f"{shorten(encoder.knobs)}"
        )
    verify_checksum(directory, config)
    path = weights_path(directory, config)
    tensors = _read_tensors(path)
    expected_names = set(trainable_state_dict(encoder))
    if set(tensors) != expected_names:
        missing = sorted(expected_names - set(tensors))[:5]
        unexpected = sorted(set(tensors) - expected_names)[:5]
        raise ArtifactError(
            f"{path}: tensor names differ (missing {shorten(missing)}, unexpected {shorten(unexpected)})"
        )
    params = dict(encoder.named_parameters())
    with torch.no_grad():
        for name, tensor in tensors.items():
            if params[name].shape != tensor.shape:
                raise ArtifactError(
                    f"{path}: tensor {name} has shape {tuple(tensor.shape)}, expected {tuple(params[name].shape)}"
                )
            if params[name].is_floating_point() != tensor.is_floating_point():
                raise ArtifactError(f"{path}: tensor {name} is {tensor.dtype}, expected {params[name].dtype}")
            params[name].copy_(tensor)
    encoder.evaluation = evaluation
    return encoder


def load_adapter(
    directory: str | os.PathLike, weights: str | os.PathLike | None = None, backbone: str | None = None
) -> VideoTextDualEncoder:
    """Build the artifact's method on its backbone (or `backbone`) with `weights` and the recorded MLP
    activation, and load the adapter.

    `weights` defaults to what the artifact records; the fingerprint check refuses any other backbone.
    """
    from vtrlab.model.factory import create_model

    config = read_adapter_config(directory)
    recorded = config.backbone
    try:
        encoder = create_model(
            config.method,
            backbone or recorded.name,
            weights if weights is not None else recorded.weights,
            knobs=config.knobs,
            quick_gelu=recorded.quick_gelu,
        )
    except ConfigError as err:
        raise ArtifactError(f"{config.source}: cannot build what it records: {cut(str(err), 600)}") from err
    return load_adapter_into(encoder, directory)
