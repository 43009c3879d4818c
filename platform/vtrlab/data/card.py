"""Dataset cards: one YAML per benchmark, validated into :class:`DatasetCard` (strict).

The cards the package reads live in ``vtrlab/data/cards/<name>.yaml`` (shipped as package data); the
repository's ``datasets/<name>.yaml`` are the user-facing copies and must stay byte-identical to them
(a test checks). ``load_card("msrvtt")`` reads the packaged card; ``load_card("path/to/card.yaml")``
reads any card file.

Card fields::

    name: msrvtt                       # benchmark name (parser registry key)
    description: ...                   # free text
    protocol: one-caption              # protocol of eval_split: one-caption | multi-caption | paragraph
    eval_split: test                   # split evaluated by default (ActivityNet: val = val_1)
    annotations: {role: file name}     # files in the --annotations folder; roles are parser-specific
    splits:
      train: {videos: 9000, captions: 180000}          # expected counts (a build reports differences)
      test:  {videos: 1000, captions: 1000, protocol: one-caption}
    num_frames: 12                     # the run's default frame count (12 or 32)
    max_words: 32                      # the run's default caption length in tokens (32 or 64)
    stored_frames: 16                  # frames kept per clip in shards (>= num_frames: training jitters)
    image_size: 224                    # stored frame size (shorter side resized, centre crop)
    fps: 1                             # sampling rate before the uniform down-sampling to stored_frames
    frame_format: jpg                  # jpg | png | npy (see docs/performance.md, "Data loading")
    jpeg_quality: 90
    shard_samples: 256                 # videos per shard
    shards: null                       # optional default URL of the built shards
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from vtrlab.config import load_model, validate_model
from vtrlab.errors import ConfigError

Protocol = Literal["one-caption", "multi-caption", "paragraph"]
PROTOCOLS: tuple[str, ...] = ("one-caption", "multi-caption", "paragraph")
CARD_NAMES: tuple[str, ...] = ("msrvtt", "msvd", "lsmdc", "didemo", "activitynet", "synthetic")
CARDS_DIR = Path(__file__).with_name("cards")


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

    name: str
    description: str = ""
    protocol: Protocol
    eval_split: str = "test"
    annotations: dict[str, str] = Field(default_factory=dict)
    splits: dict[str, SplitSpec]
    num_frames: int = Field(ge=1, le=256)
    max_words: int = Field(ge=4, le=256)
    stored_frames: int = Field(ge=1, le=512)
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
    return CARDS_DIR / f"{name}.yaml"


def load_card(name_or_path: str | Path) -> DatasetCard:
    """The card of a benchmark by name (``"msrvtt"``) or from a YAML file path."""
    s = str(name_or_path)
    if s in CARD_NAMES or (not s.endswith((".yaml", ".yml")) and "/" not in s):
        path = card_path(s)
        if not path.is_file():
            raise ConfigError(f"unknown benchmark {s!r}: expected one of {', '.join(CARD_NAMES)} or a card file")
    else:
        path = Path(s)
        if not path.is_file():
            raise ConfigError(f"{path}: dataset card file not found")
    return load_model(path, DatasetCard)
