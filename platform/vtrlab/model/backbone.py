"""Loading a frozen open_clip CLIP backbone by model name, and fingerprinting its weights.

Weights come from one of (`weights=`):

- ``None``: random initialisation (tests, demos, and parameter counting; say so in results);
- an open_clip pretrained tag such as ``"openai"`` or ``"laion2b_s34b_b88k"``: downloaded from the hub by
  open_clip (needs network; see ``open_clip.list_pretrained()``);
- a local weights file (``.safetensors``, ``.bin``, ``.pt``, ``.pth``): a full open_clip state dict,
  loaded with ``weights_only=True`` (never unpickles code);
- ``"local-dir:/path"`` as the *model name*: a folder with ``open_clip_config.json`` and its weights, the
  layout ``open_clip.push_to_hf_hub`` writes.

Tiny configurations shipped with vtrlab (``vtr-tiny``, ``vtr-small``) are registered with open_clip on
import, so ``create_model("vtr-tiny")`` works like any built-in architecture.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from vtrlab.errors import ConfigError

CONFIG_DIR = Path(__file__).parent / "configs"
TINY_MODELS = tuple(sorted(p.stem for p in CONFIG_DIR.glob("*.json")))
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


def _open_clip():
    import open_clip

    if not getattr(open_clip, "_vtrlab_configs_added", False):
        open_clip.add_model_config(CONFIG_DIR)
        open_clip._vtrlab_configs_added = True
    return open_clip


def available_backbones() -> list[str]:
    """Every open_clip architecture name usable as a backbone (ViT towers only), tiny ones included."""
    open_clip = _open_clip()
    names = []
    for name in open_clip.list_models():
        cfg = open_clip.get_model_config(name) or {}
        vision, text = cfg.get("vision_cfg", {}), cfg.get("text_cfg", {})
        if "timm_model_name" in vision or "hf_model_name" in text or "layers" not in vision:
            continue
        if isinstance(vision.get("layers"), (list, tuple)) or "multimodal_cfg" in cfg:
            continue  # ResNet towers and CoCa are not ViT dual encoders
        names.append(name)
    return names


@dataclass(frozen=True)
class BackboneInfo:
    """What an adapter artifact records about the backbone it was trained on."""

    name: str
    weights: str | None
    fingerprint: str

    def to_dict(self) -> dict[str, str | None]:
        return {"name": self.name, "weights": self.weights, "fingerprint": self.fingerprint}


def weights_fingerprint(module: nn.Module) -> str:
    """sha256 over every parameter and buffer (name, dtype, shape, bytes), sorted by name.

    Two backbones with the same fingerprint compute the same function, so an adapter can refuse a backbone
    whose weights differ from the ones it was trained on.
    """
    digest = hashlib.sha256()
    state = module.state_dict()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return "sha256:" + digest.hexdigest()


def _validate_name(name: str) -> None:
    if name.startswith("local-dir:"):
        folder = Path(name.removeprefix("local-dir:")).expanduser()
        if not (folder / "open_clip_config.json").is_file():
            raise ConfigError(
                f"backbone {name!r}: expected a folder with open_clip_config.json and weights at {folder}"
            )
        return
    if name.startswith("hf-hub:"):
        return
    allowed = available_backbones()
    if name not in allowed:
        raise ConfigError(
            f"unknown backbone {name!r}; allowed: open_clip ViT names such as "
            f"{', '.join(n for n in allowed if n.startswith(('ViT-B', 'ViT-L', 'vtr-')))} "
            f"(all {len(allowed)}: `python -c 'import open_clip; print(open_clip.list_models())'`)"
        )


def load_backbone(name: str, weights: str | os.PathLike | None = None) -> tuple[nn.Module, BackboneInfo]:
    """Build the open_clip CLIP `name` with `weights` (see the module docstring), frozen, in eval mode."""
    open_clip = _open_clip()
    _validate_name(name)
    pretrained = None
    if weights is not None:
        weights = str(weights)
        looks_like_file = weights.endswith(WEIGHT_SUFFIXES) or os.sep in weights
        if looks_like_file and not Path(weights).is_file():
            raise ConfigError(f"backbone weights file {weights!r} does not exist")
        pretrained = weights
    try:
        model = open_clip.create_model(name, pretrained=pretrained, weights_only=True)
    except Exception as err:  # open_clip raises RuntimeError, AssertionError, hub and network errors
        detail = str(err) or type(err).__name__
        if pretrained is not None and not Path(pretrained).is_file():
            tags = [tag for model, tag in open_clip.list_pretrained() if model == name]
            raise ConfigError(
                f"backbone {name!r}: could not load pretrained tag {pretrained!r} ({detail}); known tags: "
                f"{', '.join(tags) or 'none'}; tags download from the hub, offline pass a weights file"
            ) from err
        raise ConfigError(f"backbone {name!r}: weights {weights!r} do not fit the architecture: {detail}") from err
    if not hasattr(model, "visual") or not hasattr(model.visual, "transformer"):
        raise ConfigError(f"backbone {name!r} has no ViT visual tower; vtrlab needs an open_clip ViT")
    model.requires_grad_(False)
    model.eval()
    return model, BackboneInfo(name=name, weights=weights, fingerprint=weights_fingerprint(model))


def check_backbone(name: str, weights: str | None, source: str) -> None:
    """Refuse, before anything is built, an unknown backbone name or a weights file that does not exist
    (errors name `source`, the spec that asked for them)."""
    try:
        _validate_name(name)
    except ConfigError as err:
        raise ConfigError(f"{source}: backbone: {err}") from None
    if weights is not None:
        looks_like_file = str(weights).endswith(WEIGHT_SUFFIXES) or os.sep in str(weights)
        if looks_like_file and not Path(weights).expanduser().is_file():
            raise ConfigError(f"{source}: weights: file {str(weights)!r} does not exist")
