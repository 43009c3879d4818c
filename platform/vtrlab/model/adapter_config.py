"""The typed `adapter_config.json` of an adapter artifact (methods.md section 6), read and validated.

Every error is one `ArtifactError` line naming the file and the key, with values cut to a few hundred
characters. Paths the config names must stay inside the artifact's folder. No torch here: the regression
driver reads configs straight from the registry without loading any model code.
"""

from __future__ import annotations

import json
import os
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, StrictInt, ValidationError, field_validator

from vtrlab import __version__
from vtrlab.errors import ArtifactError

CONFIG_NAME = "adapter_config.json"
WEIGHTS_NAME = "adapter_model.safetensors"
FORMAT_VERSION = 2
MAX_VALUE_CHARS = 200
MAX_CONFIG_BYTES = 1 << 20  # a config is a few kilobytes; a larger file is not one
MAX_PROBLEMS = 4  # validation problems listed in one message
SHA256 = r"^sha256:[0-9a-f]{64}$"

PositiveInt = Annotated[StrictInt, Field(gt=0)]


def cut(text: str, limit: int = MAX_VALUE_CHARS) -> str:
    """`text` on one line, cut to `limit` characters, for error messages that stay one readable line."""
    if "\n" in text or "\r" in text:
        text = " ".join(text.split())
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def shorten(value: Any, limit: int = MAX_VALUE_CHARS) -> str:
    """`repr(value)`, cut to `limit` characters."""
    return cut(repr(value), limit)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EvaluationSettings(_Section):
    """How the adapter was evaluated: the benchmark and split, frames per clip, words per caption, videos per
    batch. `vtrlab search`, `vtrlab regress --champions-only` and `vtrlab.load` evaluate with these."""

    benchmark: Annotated[str, Field(min_length=1)]
    split: Annotated[str, Field(min_length=1)]
    num_frames: PositiveInt
    max_words: PositiveInt
    batch_size: PositiveInt = 64


class RecordedBackbone(_Section):
    """The backbone the adapter was trained on (`vtrlab.model.backbone.BackboneInfo`)."""

    name: Annotated[str, Field(min_length=1)]
    weights: str | None
    fingerprint: Annotated[str, Field(pattern=SHA256)]
    activation: Literal["quick_gelu", "gelu"]
    image_size: tuple[PositiveInt, PositiveInt]

    @property
    def quick_gelu(self) -> bool:
        return self.activation == "quick_gelu"


class AdapterConfig(BaseModel):
    """`adapter_config.json`: method, knobs, backbone, tensor file and checksum, evaluation settings.

    Keys vtrlab does not know (e.g. the training epoch) are kept as they are.
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    format_version: Literal[2]
    vtrlab_version: Annotated[str, Field(min_length=1)]
    method: Annotated[str, Field(min_length=1)]
    knobs: dict[str, Any]
    backbone: RecordedBackbone
    weights_file: Annotated[str, Field(min_length=1)] = WEIGHTS_NAME
    weights_sha256: Annotated[str, Field(pattern=SHA256)]
    evaluation: EvaluationSettings | None = None  # read through `evaluation_settings`, which refuses None
    _source: str = PrivateAttr(default=CONFIG_NAME)

    @field_validator("weights_file")
    @classmethod
    def _plain_relative_name(cls, value: str) -> str:
        if "\x00" in value:
            raise ValueError("must name a file inside the artifact folder (a NUL character names no file)")
        posix, windows = PurePosixPath(value), PureWindowsPath(value)
        if posix.is_absolute() or windows.is_absolute() or windows.drive or ".." in posix.parts + windows.parts:
            raise ValueError("must name a file inside the artifact folder (no absolute path, no '..')")
        return value

    @property
    def source(self) -> str:
        """The file (or registry location) this config was read from, for messages."""
        return self._source

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), indent=2, sort_keys=True)


def _validation_message(err: ValidationError, source: str) -> str:
    """The first few problems, each naming its key (keys and values cut), the rest counted."""
    items = err.errors()
    problems = []
    for item in items[:MAX_PROBLEMS]:
        key = cut(".".join(str(part) for part in item["loc"]) or "<root>", 60)
        if item["type"] == "missing":
            problems.append(f"key {key} is missing")
        else:
            problems.append(f"key {key}: {cut(item['msg'], 100)} (got {shorten(item.get('input'), 60)})")
    more = f" (and {len(items) - MAX_PROBLEMS} more)" if len(items) > MAX_PROBLEMS else ""
    return f"{source}: " + "; ".join(problems) + more


def parse_adapter_config(text: str | bytes, source: str) -> AdapterConfig:
    """Validate the text of an `adapter_config.json`; `source` names it in errors (a path or registry URI)."""
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ArtifactError(f"{source}: not valid JSON ({cut(str(err))})") from None
    except RecursionError:
        raise ArtifactError(f"{source}: not an adapter config (JSON nested too deeply to read)") from None
    if not isinstance(data, dict):
        kind = type(data).__name__
        raise ArtifactError(f"{source}: expected a JSON object with method, knobs and backbone; got a {kind}")
    version = data.get("format_version")
    if isinstance(version, int) and not isinstance(version, bool):
        if version > FORMAT_VERSION:
            raise ArtifactError(
                f"{source}: format_version {version} is newer than this vtrlab {__version__} reads "
                f"(up to {FORMAT_VERSION}); upgrade vtrlab to load it"
            )
        if version < FORMAT_VERSION:
            raise ArtifactError(
                f"{source}: format_version {version} is an older artifact format without backbone.activation, "
                f"backbone.image_size and evaluation; vtrlab {__version__} reads format {FORMAT_VERSION}: "
                "retrain the adapter (or re-save it with this vtrlab)"
            )
    try:
        config = AdapterConfig.model_validate(data)
    except ValidationError as err:
        raise ArtifactError(_validation_message(err, source)) from None
    config._source = source
    return config


def read_adapter_config(directory: str | os.PathLike) -> AdapterConfig:
    """The validated config of the artifact in `directory` (a file inside it, at most MAX_CONFIG_BYTES)."""
    path = Path(directory) / CONFIG_NAME
    try:
        if not path.is_file():
            raise ArtifactError(f"{path}: no adapter config; expected {CONFIG_NAME} and {WEIGHTS_NAME} here")
        _inside(path, Path(directory), f"{path}: a link to {path.resolve()}")
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise ArtifactError(f"{path}: {size} bytes; an adapter config is at most {MAX_CONFIG_BYTES} bytes")
        text = path.read_bytes()
    except (OSError, ValueError) as err:
        raise ArtifactError(f"{path}: cannot read ({cut(getattr(err, 'strerror', None) or str(err))})") from None
    return parse_adapter_config(text, str(path))


def _inside(path: Path, folder: Path, what: str) -> None:
    """Refuse `path` unless it resolves (links followed) inside `folder`; `what` starts the message."""
    root = folder.resolve()
    if not path.resolve().is_relative_to(root):
        raise ArtifactError(
            f"{what} resolves outside the artifact folder {root}; expected a file inside it (refused, not read)"
        )


def weights_path(directory: str | os.PathLike, config: AdapterConfig, origin: str | None = None) -> Path:
    """The tensor file `weights_file` names, which must resolve (links followed) inside `directory`; errors
    name `origin` (default: the config's file) and the value, before anything is read."""
    folder = Path(directory)
    candidate = folder / config.weights_file
    what = f"{origin or config.source}: weights_file {shorten(config.weights_file)}"
    try:
        _inside(candidate, folder, what)
        if not candidate.is_file():
            raise ArtifactError(f"{what} names no file in {folder}; expected the adapter's tensor file")
    except OSError as err:
        raise ArtifactError(f"{what}: cannot be read ({cut(err.strerror or str(err))})") from None
    return candidate


def evaluation_settings(artifact: str | os.PathLike | AdapterConfig) -> EvaluationSettings:
    """The evaluation settings an artifact records (a folder or its read config): the one source of the
    benchmark, split, frames, words and batch size for `vtrlab search`, `vtrlab regress --champions-only`
    and `vtrlab.load`; an artifact without them is refused, naming the file and the key."""
    config = artifact if isinstance(artifact, AdapterConfig) else read_adapter_config(artifact)
    if config.evaluation is None:
        raise ArtifactError(
            f"{config.source}: key evaluation is missing: the adapter records no evaluation settings "
            "(benchmark, split, num_frames, max_words); artifacts vtrlab trains always have them"
        )
    return config.evaluation
