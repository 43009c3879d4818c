"""Loading a frozen open_clip CLIP backbone by model name, and fingerprinting its weights.

Weights come from one of (`weights=`):

- ``None``: random initialisation (tests, demos, and parameter counting; say so in results);
- an open_clip pretrained tag such as ``"openai"`` or ``"laion2b_s34b_b88k"``: downloaded from the hub by
  open_clip (needs network; see ``open_clip.list_pretrained()``);
- a local weights file (``.safetensors``, ``.bin``, ``.pt``, ``.pth``): a full open_clip state dict,
  loaded with ``weights_only=True`` (never unpickles code);
- ``"local-dir:/path"`` as the *model name*: a folder with ``open_clip_config.json`` and its weights, the
  layout ``open_clip.push_to_hf_hub`` writes.

The MLP activation (methods.md section 1.1) is decided in this order: a pretrained tag's own config (every
``openai`` tag was trained with QuickGELU; asking for the other activation is an error), else the explicit
``quick_gelu`` option, else the model config (the ``-quickgelu`` names set it). A local weights file of
OpenAI CLIP therefore needs ``quick_gelu=True`` (or a ``-quickgelu`` name). The activation actually built is
recorded in `BackboneInfo`, so an adapter refuses a backbone built with the other one.

Tiny configurations shipped with vtrlab (``vtr-tiny``, ``vtr-small``) are registered with open_clip on
import, so ``create_model("vtr-tiny")`` works like any built-in architecture.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

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


Activation = Literal["quick_gelu", "gelu"]


@dataclass(frozen=True)
class BackboneInfo:
    """What an adapter artifact records about the backbone it was trained on: the weights' fingerprint does
    not cover the MLP activation or the input size, so those are recorded beside it."""

    name: str
    weights: str | None
    fingerprint: str
    activation: Activation = "gelu"
    image_size: tuple[int, int] = (224, 224)

    @property
    def quick_gelu(self) -> bool:
        return self.activation == "quick_gelu"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "weights": self.weights,
            "fingerprint": self.fingerprint,
            "activation": self.activation,
            "image_size": list(self.image_size),
        }


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


def backbone_activation(model: nn.Module) -> Activation:
    """The activation the backbone's transformer MLPs were built with (both towers share it)."""
    from open_clip.transformer import QuickGELU

    text = getattr(model, "text", model)
    blocks = [*model.visual.transformer.resblocks, *text.transformer.resblocks]
    found = {
        "quick_gelu" if isinstance(module, QuickGELU) else "gelu"
        for block in blocks
        for module in block.mlp.children()
        if isinstance(module, (QuickGELU, nn.GELU))
    }
    if len(found) != 1:
        raise ConfigError(f"backbone MLPs use {sorted(found) or 'no'} activation(s); expected one of QuickGELU, GELU")
    return found.pop()  # type: ignore[return-value]


def _config_quick_gelu(name: str) -> bool | None:
    """`quick_gelu` of the model config `name` names (built-in, `-quickgelu` or local-dir); None if unknown."""
    if name.startswith("hf-hub:"):
        return None
    if name.startswith("local-dir:"):
        config_path = Path(name.removeprefix("local-dir:")).expanduser() / "open_clip_config.json"
        try:
            model_cfg = json.loads(config_path.read_text()).get("model_cfg", {})
        except (OSError, ValueError, AttributeError):
            return None  # open_clip reports the unreadable config itself
        return bool(model_cfg.get("quick_gelu", False)) if isinstance(model_cfg, dict) else None
    return bool((_open_clip().get_model_config(name) or {}).get("quick_gelu", False))


def _choose_quick_gelu(name: str, tag: str | None, quick_gelu: bool | None) -> bool | None:
    """The activation to build (see the module docstring); None leaves the model config's choice."""
    open_clip = _open_clip()
    tag_cfg = open_clip.get_pretrained_cfg(name, tag) if tag is not None else {}
    if tag_cfg:
        wanted = bool(tag_cfg.get("quick_gelu", False))
        if quick_gelu is not None and quick_gelu != wanted:
            raise ConfigError(
                f"backbone {name!r} with pretrained tag {tag!r}: quick_gelu={quick_gelu} contradicts the tag, which "
                f"was trained with {'QuickGELU' if wanted else 'GELU'} (quick_gelu={wanted}); drop the option"
            )
        return wanted
    from_config = _config_quick_gelu(name)
    if quick_gelu is not None and from_config and not quick_gelu:
        raise ConfigError(
            f"backbone {name!r} is a QuickGELU configuration; quick_gelu=False contradicts it "
            "(use the name without -quickgelu for GELU)"
        )
    return quick_gelu


def load_backbone(
    name: str, weights: str | os.PathLike | None = None, quick_gelu: bool | None = None
) -> tuple[nn.Module, BackboneInfo]:
    """Build the open_clip CLIP `name` with `weights` and MLP activation (`quick_gelu`, see the module
    docstring), frozen, in eval mode."""
    open_clip = _open_clip()
    _validate_name(name)
    pretrained = None
    looks_like_file = False
    if weights is not None:
        weights = str(weights)
        looks_like_file = weights.endswith(WEIGHT_SUFFIXES) or os.sep in weights
        if looks_like_file and not Path(weights).is_file():
            raise ConfigError(f"backbone weights file {weights!r} does not exist")
        pretrained = weights
    chosen = _choose_quick_gelu(name, None if looks_like_file else pretrained, quick_gelu)
    activation_args: dict[str, Any] = {} if chosen is None else {"force_quick_gelu": chosen, "quick_gelu": chosen}
    try:
        model = open_clip.create_model(name, pretrained=pretrained, weights_only=True, **activation_args)
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
    size = model.visual.image_size
    info = BackboneInfo(
        name=name,
        weights=weights,
        fingerprint=weights_fingerprint(model),
        activation=backbone_activation(model),
        image_size=(size, size) if isinstance(size, int) else (int(size[0]), int(size[1])),
    )
    return model, info


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
