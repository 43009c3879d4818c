"""Typed configuration of one training run (`TrainSpec`); sweeps (`vtrlab.sweep.spec`) build these.

Defaults follow methods.md section 2.6 (the MV-Adapter recipe); benchmark-dependent values (frames, words)
default to the dataset card's, and a method's knobs to its authors' setting for the benchmark.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from vtrlab.errors import ConfigError

PositiveInt = Annotated[int, Field(gt=0)]
PositiveFloat = Annotated[float, Field(gt=0)]
OptimizerName = Literal["adamw", "bertadam"]  # the training recipes of methods.md section 2.6
ClipMode = Literal["global", "per-tensor", "global-then-per-tensor"]


class StrictModel(BaseModel):
    """Unknown keys are errors; values are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class TrainSpec(StrictModel):
    """Everything one training run needs; serialisable to JSON so Ray and MLflow can carry it."""

    benchmark: str
    method: str
    knobs: dict[str, Any] = Field(default_factory=dict)
    backbone: str = "vtr-tiny"
    weights: str | None = None
    quick_gelu: bool | None = Field(
        None, description="QuickGELU MLPs (OpenAI CLIP in a weights file needs true); a pretrained tag decides itself"
    )
    data: str = Field(description="URL of the built dataset (local path, file:// or s3://)")
    train_split: str = "train"
    eval_split: str | None = None
    epochs: PositiveInt = 5
    batch_size: PositiveInt = Field(128, description="global batch over all workers")
    eval_batch_size: PositiveInt = 64
    num_frames: PositiveInt | None = None
    max_words: PositiveInt | None = None
    epoch_batches: PositiveInt | None = None
    lr: PositiveFloat = 5e-6
    backbone_lr: PositiveFloat = 1e-7
    weight_decay: Annotated[float, Field(ge=0)] = 0.2
    warmup_ratio: Annotated[float, Field(ge=0, lt=1)] = 0.1
    max_grad_norm: PositiveFloat | None = 1.0
    optimizer: OptimizerName = Field("adamw", description="the training recipe (methods.md section 2.6)")
    grad_clip: ClipMode | None = Field(
        None, description="clip gradients over their global norm and/or per tensor; default: the recipe's"
    )
    seed: int = 0
    loader_workers: Annotated[int, Field(ge=0)] = 0
    workers: PositiveInt = 1
    gpus_per_worker: Annotated[float, Field(ge=0)] = 0.0
    cpus_per_worker: PositiveFloat = 1.0
    max_failures: Annotated[int, Field(ge=0)] = 2

    @model_validator(mode="after")
    def _batch_fits_workers(self) -> TrainSpec:
        if self.batch_size % self.workers:
            raise ValueError(f"batch_size {self.batch_size} must be divisible by workers {self.workers}")
        return self

    def resolved(self) -> TrainSpec:
        """A copy with frames, words and the eval split filled from the dataset card; validates the method."""
        from vtrlab.data.card import load_card
        from vtrlab.model.methods import parse_knobs

        card = load_card(self.benchmark)
        num_frames, max_words = self.num_frames or card.num_frames, self.max_words or card.max_words
        knobs = resolve_knobs(self.method, self.benchmark, self.knobs, num_frames, max_words)
        parse_knobs(self.method, knobs, source=f"{self.method} knobs")
        return self.model_copy(
            update={
                "num_frames": num_frames,
                "max_words": max_words,
                "eval_split": self.eval_split or card.eval_split,
                "knobs": knobs,
            }
        )


def resolve_knobs(
    method: str,
    benchmark: str,
    knobs: dict[str, Any] | None = None,
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
    merged = {**benchmark_knobs(method, benchmark), **dict(knobs or {})}
    return _sized_knobs(method, merged, {"max_frames": num_frames, "max_words": max_words})


def _sized_knobs(method: str, knobs: dict[str, Any], needed: dict[str, int]) -> dict[str, Any]:
    """Size a method's position tables (`max_frames`, `max_words` knobs) for the benchmark's clips and
    captions when the knobs leave them unset (DiDeMo and ActivityNet use 32 frames and 64 words; the
    paper's MV-Adapter is sized per benchmark this way); refuse explicit sizes that are too small."""
    from vtrlab.model.methods import get_method

    fields = get_method(method).knobs.model_fields
    for knob, size in needed.items():
        if knob not in fields:
            continue
        if knob not in knobs:
            knobs[knob] = max(size, fields[knob].default)
        elif int(knobs[knob]) < size:
            raise ConfigError(f"{method} knob {knob}={knobs[knob]} is smaller than the {size} the data yields")
    return knobs


def format_validation_error(err: ValidationError, source: str) -> str:
    """One line per problem: `source: key.path: message (got value)`."""
    lines = []
    for item in err.errors():
        key = ".".join(str(part) for part in item["loc"]) or "<root>"
        got = item.get("input")
        detail = f" (got {got!r})" if item["type"] != "missing" and not isinstance(got, dict) else ""
        lines.append(f"{source}: {key}: {item['msg']}{detail}")
    return "\n".join(lines)


def validate_model(model: type[BaseModel], data: Any, source: str) -> Any:
    """`model.model_validate(data)` with errors turned into a ConfigError that names the file and keys."""
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, source)) from None


def load_yaml(path: str | Path) -> Any:
    """Parse a YAML file; a missing file or bad YAML is a ConfigError naming the file (and line)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err})") from None
