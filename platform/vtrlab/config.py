"""The configuration spine: one YAML loader and one error formatter for every YAML model (dataset cards,
sweep specs, regression suites, reference tables), and the typed configuration of one training run
(`TrainSpec`), which is what travels to the Ray Train workers.

Defaults follow the MV-Adapter recipe (docs/methods.md, section 2.6); benchmark-dependent values (frames,
words) default to the dataset card's when a spec is resolved, and a method's knobs to its authors' setting
for the benchmark.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Hashable
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny, TypeAdapter, ValidationError, model_validator

from vtrlab.errors import ConfigError

PositiveInt = Annotated[int, Field(gt=0)]
PositiveFloat = Annotated[float, Field(gt=0)]
M = TypeVar("M", bound=BaseModel)
OptimizerName = Literal["adamw", "bertadam"]  # the training recipes of docs/methods.md section 2.6
ClipMode = Literal["global", "per-tensor", "global-then-per-tensor"]

MAX_SHOWN = 200  # characters of a offending value an error message shows
MAX_YAML_BYTES = 4 << 20
_VARIABLE = re.compile(r"\$(\w+)|\$\{(\w+)\}")


class StrictModel(BaseModel):
    """Unknown keys are errors; values are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# ---- errors --------------------------------------------------------------------------------------


def shown(value: Any, limit: int = MAX_SHOWN) -> str:
    """`repr(value)`, cut after `limit` characters: error messages stay one readable line."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def format_validation_error(err: ValidationError, source: str) -> str:
    """One line per problem: `source: key.path: message (got value)`, values cut to a few hundred chars."""
    lines = []
    for item in err.errors()[:20]:
        key = ".".join(str(part) for part in item["loc"])
        where = f"{source}: {key}" if key else source
        got = item.get("input")
        if item["type"] == "extra_forbidden":
            lines.append(f"{where}: unknown key")
            continue
        plain = item["type"] in ("missing", "value_error") or isinstance(got, dict)  # the message says it all
        detail = "" if plain else f" (got {shown(got)})"
        lines.append(f"{where}: {item['msg'].removeprefix('Value error, ')}{detail}")
    if len(err.errors()) > 20:
        lines.append(f"{source}: ... and {len(err.errors()) - 20} more problems")
    return "\n".join(lines)


def validate_model(model: type[M], data: Any, source: str) -> M:
    """`model.model_validate(data)` with errors turned into a ConfigError that names the file and keys."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of keys to values, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, source)) from None


# ---- YAML ----------------------------------------------------------------------------------------


class _NoAliasLoader(yaml.SafeLoader):
    """PyYAML's safe loader without anchors and aliases: a few bytes of aliases can expand to gigabytes
    ("billion laughs"), and no vtrlab file needs them."""

    def compose_node(self, parent, index):  # type: ignore[override]
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, f"aliases (*{event.anchor}) are not allowed in vtrlab files", event.start_mark
            )
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):  # type: ignore[override]
        """A key given twice is an error, not the last one silently winning."""
        if isinstance(node, yaml.MappingNode):
            self.flatten_mapping(node)
            seen = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                if not isinstance(key, Hashable):
                    continue  # PyYAML names an unhashable key itself
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"key {shown(key)} is given twice in one mapping", key_node.start_mark
                    )
                seen.add(key)
        return super().construct_mapping(node, deep)


def parse_yaml(text: str, source: str) -> Any:
    """Parse YAML text (safe: plain data only, no aliases); errors name `source` and the line."""
    if len(text) > MAX_YAML_BYTES:
        raise ConfigError(f"{source}: {len(text)} bytes is larger than the {MAX_YAML_BYTES} a vtrlab file may be")
    try:
        return yaml.load(text, Loader=_NoAliasLoader)
    except RecursionError:
        raise ConfigError(f"{source}: not valid YAML (nested too deeply)") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err)
        raise ConfigError(f"{source}:{where}: not valid YAML ({shown(problem)})") from None


def load_yaml(path: str | Path) -> Any:
    """Read and parse a YAML file; a missing, unreadable or bad file is a ConfigError naming it."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text (byte {err.start})") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot read ({err.strerror or err})") from None
    return parse_yaml(text, str(path))


def load_model(path: str | Path, model: type[M]) -> M:
    """The one way to read a YAML model: parse `path` and validate it into `model`, errors naming the file
    and the keys."""
    return validate_model(model, load_yaml(path), str(path))


def expand_path(value: str, key: str, source: str) -> str:
    """`~` and `$VAR` / `${VAR}` expanded; `$VTRLAB_HOME` defaults to vtrlab's home when unset."""
    from vtrlab.paths import vtrlab_home

    variables = {"VTRLAB_HOME": str(vtrlab_home()), **os.environ}

    def substitute(match: re.Match) -> str:
        name = match.group(1) or match.group(2)
        if name not in variables:
            raise ConfigError(f"{source}: {key}: environment variable ${name} is not set (in {shown(value)})")
        return variables[name]

    return os.path.expanduser(_VARIABLE.sub(substitute, value))


# ---- one training run ----------------------------------------------------------------------------


def _typed_knobs(method: Any, knobs: Any, source: str = "knobs") -> Any:
    """`knobs` validated into method `method`'s knob model (an instance of it passes unchanged)."""
    from vtrlab.model.methods import get_method, parse_knobs

    if not isinstance(method, str):
        return knobs  # pydantic reports the bad method itself
    entry = get_method(method)
    if isinstance(knobs, entry.knobs):
        return knobs
    if isinstance(knobs, BaseModel):
        knobs = knobs.model_dump()
    if knobs is not None and not isinstance(knobs, dict):
        raise ConfigError(f"{source}: knobs of {method} must be a mapping, got {shown(knobs)}")
    return parse_knobs(method, knobs, source=source)


class TrainSpec(StrictModel):
    """Everything one training run needs. `knobs` is the method's validated knob model (validated once,
    here); the spec itself is what the Ray Train workers receive."""

    benchmark: str = Field(description="dataset card name (msrvtt, msvd, lsmdc, didemo, activitynet, synthetic)")
    method: str = Field(description="a method from `vtrlab model list`")
    knobs: SerializeAsAny[BaseModel] = Field(default_factory=BaseModel)
    backbone: str = Field("vtr-tiny", description="open_clip model name, e.g. ViT-B-16")
    weights: str | None = Field(None, description="pretrained tag (e.g. openai) or weights file; none: random")
    quick_gelu: bool | None = Field(
        None, description="QuickGELU MLPs (OpenAI CLIP in a weights file needs true); a pretrained tag decides itself"
    )
    data: str = Field(description="URL of the built dataset (local path, file:// or s3://)")
    train_split: str = Field("train", description="split trained on")
    eval_split: str | None = Field(None, description="split evaluated every epoch (default: the card's)")
    epochs: PositiveInt = Field(5, description="training epochs")
    batch_size: PositiveInt = Field(128, description="global batch over all workers")
    eval_batch_size: PositiveInt = Field(64, description="videos per evaluation batch")
    num_frames: PositiveInt | None = Field(None, description="frames per clip (default: the card's)")
    max_words: PositiveInt | None = Field(None, description="tokens per caption (default: the card's)")
    epoch_batches: PositiveInt | None = Field(None, description="batches per epoch (default: captions / batch)")
    frame_jitter: bool = Field(
        False, description="train on a random stored frame of each frame's segment (default: CLIP4Clip's frames)"
    )
    allow_missing: bool = Field(
        False,
        description="evaluate a split short of the card's sizes, the videos the build skipped kept as "
        "zero-frame clips (default: refuse it); the run is tagged",
    )
    lr: PositiveFloat = Field(5e-6, description="learning rate of the method's parameters")
    backbone_lr: PositiveFloat = Field(1e-7, description="learning rate of backbone tensors that train")
    weight_decay: Annotated[float, Field(ge=0, description="decoupled weight decay")] = 0.2
    warmup_ratio: Annotated[float, Field(ge=0, lt=1, description="share of steps warming up")] = 0.1
    max_grad_norm: PositiveFloat | None = Field(1.0, description="gradient clipping (none: off)")
    optimizer: OptimizerName = Field("adamw", description="the training recipe: adamw or bertadam (the authors')")
    grad_clip: ClipMode | None = Field(
        None, description="clip gradients over their global norm and/or per tensor; default: the recipe's"
    )
    seed: int = Field(0, description="random seed")
    loader_workers: Annotated[int, Field(ge=0, description="DataLoader workers per rank")] = 0
    workers: PositiveInt = Field(1, description="Ray Train workers (DDP ranks)")
    gpus_per_worker: Annotated[float, Field(ge=0, description="GPUs per worker (0: CPU, gloo)")] = 0.0
    cpus_per_worker: PositiveFloat = Field(1.0, description="CPUs per worker")
    max_failures: Annotated[int, Field(ge=0, description="worker-group restarts of one training run")] = 2

    @model_validator(mode="before")
    @classmethod
    def _knobs_of_the_method(cls, data: Any) -> Any:
        if isinstance(data, dict) and "method" in data:
            data = {**data, "knobs": _typed_knobs(data["method"], data.get("knobs"))}
        return data

    @model_validator(mode="after")
    def _batch_fits_workers(self) -> TrainSpec:
        if self.batch_size % self.workers:
            raise ValueError(f"batch_size {self.batch_size} must be divisible by workers {self.workers}")
        return self

    @property
    def knob_values(self) -> dict[str, Any]:
        """The knobs as plain values (what `create_model` and MLflow params take)."""
        return self.knobs.model_dump()

    def resolved(self) -> TrainSpec:
        """A copy with frames, words and the eval split filled from the dataset card, the knobs it leaves
        unset at the authors' setting for the benchmark, and the method's position tables sized."""
        from vtrlab.data.card import load_card

        card = load_card(self.benchmark)
        num_frames, max_words = self.num_frames or card.num_frames, self.max_words or card.max_words
        knobs = resolve_knobs(self.method, self.benchmark, self.knobs, num_frames, max_words)
        return TrainSpec.model_validate(
            {
                **dict(self),
                "num_frames": num_frames,
                "max_words": max_words,
                "eval_split": self.eval_split or card.eval_split,
                "knobs": knobs,
            }
        )


TRAIN_FIELDS: frozenset[str] = frozenset(TrainSpec.model_fields) - {"benchmark", "method", "knobs", "data"}


def resolve_knobs(
    method: str,
    benchmark: str,
    knobs: BaseModel | dict[str, Any] | None = None,
    num_frames: int | None = None,
    max_words: int | None = None,
) -> dict[str, Any]:
    """`knobs` completed for a run on `benchmark`: every knob they leave unset takes the value the method's
    authors used on that benchmark (`vtrlab.model.methods.benchmark_knobs`), and position tables are sized
    for the clips' frames and the captions' words (default: the benchmark card's)."""
    from vtrlab.model.methods import benchmark_knobs

    if num_frames is None or max_words is None:
        from vtrlab.data.card import load_card

        card = load_card(benchmark)
        num_frames, max_words = num_frames or card.num_frames, max_words or card.max_words
    typed = _typed_knobs(method, knobs)
    explicit = {name: value for name, value in typed.model_dump().items() if name in typed.model_fields_set}
    merged = {**benchmark_knobs(method, benchmark), **explicit}
    values = {**typed.model_dump(), **merged}
    defaults = type(typed).model_fields
    for knob, size in {"max_frames": num_frames, "max_words": max_words}.items():
        if knob not in defaults:
            continue
        if knob not in merged:
            values[knob] = max(size, defaults[knob].default)
        elif int(values[knob]) < size:
            raise ConfigError(f"{method} knob {knob}={values[knob]} is smaller than the {size} the data yields")
    return values


@functools.cache
def _field_validator(name: str) -> TypeAdapter:
    info = TrainSpec.model_fields[name]
    return TypeAdapter(Annotated[info.annotation, info])


def check_train_fields(fields: dict[str, Any], key: str, source: str, forbid: tuple[str, ...] = ()) -> None:
    """Every key of a `train:` block names a TrainSpec field (and none of `forbid`) and holds a value that
    field takes; errors name the file, `key`.<field> and what is allowed."""
    for name, value in fields.items():
        if name in forbid:
            raise ConfigError(f"{source}: {key}.{name}: not allowed here")
        if name not in TRAIN_FIELDS:
            raise ConfigError(
                f"{source}: {key}.{name}: unknown training field; allowed: {', '.join(sorted(TRAIN_FIELDS))}"
            )
        try:
            _field_validator(name).validate_python(value)
        except ValidationError as err:
            problems = "; ".join(dict.fromkeys(item["msg"] for item in err.errors()))
            raise ConfigError(f"{source}: {key}.{name}: {problems} (got {shown(value)})") from None
