"""Dataset cards: one YAML per benchmark, validated into :class:`DatasetCard` (strict).

Each registered benchmark's card is the YAML next to its parser module
(``vtrlab/data/benchmarks/<name>.yaml``, shipped as package data; the one copy). ``load_card("msrvtt")``
reads a registered benchmark's card; ``load_card("path/to/card.yaml")`` reads a card file, e.g. a user's
own benchmark whose annotation files follow a registered benchmark's layout (``parser: msrvtt``).

Card fields::

    name: msrvtt                       # benchmark name (letters, digits, "_", "-", ".")
    parser: msrvtt                     # registered benchmark whose annotation layout the files follow
                                       # (default: name; unknown -> ConfigError naming the file and key)
    description: ...                   # free text
    protocol: one-caption              # protocol of eval_split: one-caption | multi-caption | paragraph
    eval_split: test                   # split evaluated by default (ActivityNet: val = val_1)
    annotations: {role: file name}     # files in the --annotations folder; roles are parser-specific
    splits:
      train: {videos: 9000, captions: 180000}          # expected counts (a build reports differences)
      test:  {videos: 1000, captions: 1000, protocol: one-caption}
    num_frames: 12                     # the run's default frame count (12 or 32)
    max_words: 32                      # the run's default caption length in tokens (32 or 64)
    stored_frames: null                # frames kept per clip: null = num_frames, CLIP4Clip's frames exactly;
                                       #   more keeps extra 1-fps frames for optional training jitter
    image_size: 224                    # stored frame size (shorter side resized, centre crop)
    fps: 1                             # sampling rate before CLIP4Clip's linspace(dtype=int) to num_frames
    frame_format: jpg                  # jpg | png | npy (see docs/performance.md, "Data loading")
    jpeg_quality: 90
    shard_samples: 256                 # videos per shard
    shards: null                       # optional default URL of the built shards
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from vtrlab.config import load_model, validate_model
from vtrlab.data.benchmarks.registry import get_benchmark, list_benchmarks
from vtrlab.errors import ConfigError

Protocol = Literal["one-caption", "multi-caption", "paragraph"]
PROTOCOLS: tuple[str, ...] = ("one-caption", "multi-caption", "paragraph")
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"  # a card's name names a folder: $VTRLAB_HOME/data/<name>


class SplitSpec(BaseModel):
    """Expected size of one split, and its protocol when it differs from the card's."""

    model_config = ConfigDict(extra="forbid")

    videos: int = Field(ge=0)
    captions: int = Field(ge=0)
    protocol: Protocol | None = None
    description: str = ""


class DatasetCard(BaseModel):
    """A benchmark's card; see the module docstring for the fields."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN, max_length=100)
    parser: str | None = Field(default=None, pattern=NAME_PATTERN, max_length=100)
    description: str = ""
    protocol: Protocol
    eval_split: str = "test"
    annotations: dict[str, str] = Field(default_factory=dict)
    splits: dict[str, SplitSpec]
    num_frames: int = Field(ge=1, le=256)
    max_words: int = Field(ge=4, le=256)
    stored_frames: int | None = Field(default=None, ge=1, le=512)
    image_size: int = Field(ge=8, le=1024)
    fps: float = Field(default=1.0, gt=0)
    frame_format: Literal["jpg", "png", "npy"] = "jpg"
    jpeg_quality: int = Field(default=90, ge=10, le=100)
    shard_samples: int = Field(default=256, ge=1)
    shards: str | None = None

    @field_validator("splits")
    @classmethod
    def _non_empty(cls, v: dict) -> dict:
        if not v:
            raise ValueError("a card needs at least one split")
        return v

    @model_validator(mode="after")
    def _check(self) -> DatasetCard:
        if self.eval_split not in self.splits:
            raise ValueError(f"eval_split {self.eval_split!r} is not one of the splits {sorted(self.splits)}")
        return self

    @property
    def parser_name(self) -> str:
        """The registered benchmark whose parser reads this card's annotation files."""
        return self.parser or self.name

    def split_protocol(self, split: str) -> str:
        """Protocol of ``split``: its own, else the card's for the eval split, else inferred."""
        spec = self.splits.get(split)
        if spec is not None and spec.protocol:
            return spec.protocol
        return self.protocol


def card_from_dict(data: dict, source: str = "<dict>") -> DatasetCard:
    """Validate a parsed card; errors name ``source`` and each key at fault (`vtrlab.config`'s formatter)."""
    return validate_model(DatasetCard, data, source)


def card_path(name: str) -> Path:
    """The card file of registered benchmark ``name``."""
    return get_benchmark(name).card


def __getattr__(attr: str) -> tuple[str, ...]:
    if attr == "CARD_NAMES":  # the registered benchmarks, found when first asked for
        return tuple(list_benchmarks())
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")


def _is_path(s: str) -> bool:
    return s.endswith((".yaml", ".yml")) or "/" in s or os.sep in s


def benchmark_label(benchmark: str) -> str:
    """The name a benchmark goes by in run names, sweep keys and registry names: a registered benchmark's own
    name, a card file's ``name`` (never its path)."""
    return load_card(benchmark).name if _is_path(str(benchmark)) else str(benchmark)


def load_card(name_or_path: str | Path) -> DatasetCard:
    """The card of a registered benchmark by name (``"msrvtt"``) or from a YAML card file.

    A card file's ``parser`` (default: its ``name``) must be a registered benchmark: an unknown one is a
    ConfigError naming the file and the key."""
    s = str(name_or_path)
    names = list_benchmarks()
    if not isinstance(name_or_path, Path) and s in names:
        path = card_path(s)
    elif isinstance(name_or_path, Path) or _is_path(s):
        path = Path(s).expanduser()
        if not path.is_file():
            raise ConfigError(f"{path}: dataset card file not found")
    else:
        raise ConfigError(f"unknown benchmark {s!r}: expected one of {', '.join(names)} or a card file (.yaml)")
    card = load_model(path, DatasetCard)
    if card.parser_name not in names:
        key = "parser" if card.parser else "name"
        raise ConfigError(
            f"{path}: {key}: no registered benchmark parser {card.parser_name!r}"
            + ("" if card.parser else " (parser defaults to the name)")
            + f"; set parser: to the benchmark whose annotation layout the files follow: {', '.join(names)}"
        )
    return card
