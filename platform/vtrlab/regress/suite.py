"""The regression suite (`sweeps/regression*.yaml`): fixed configurations retrained over seeds and compared
with the registry's champions and the suite's previous run.

Example (see sweeps/regression-quickstart.yaml)::

    name: quickstart
    backbone: vtr-tiny
    weights: $VTRLAB_HOME/backbones/vtr-tiny-synthetic-small.safetensors   # ~ and $VARS expand
    data: {synthetic: $VTRLAB_HOME/data/synthetic}   # optional; default: card's shards or $VTRLAB_HOME/data
    train: {epochs: 3, batch_size: 32}               # TrainSpec fields shared by every entry (no `seed`)
    seeds: [0, 1, 2]
    metric: t2v_R1                                   # higher is better
    tolerance: {max_r1_drop: 3.0, seed_sigmas: 2.0}  # allowed drop: the larger of 3 points and 2 x std
    budget: {max_concurrent: 1, cpus_per_trial: 0.1, trial_retries: 1}
    entries:
      - benchmark: synthetic
        method: mv-adapter
        knobs: {width: 32}
        train: {lr: 2.0e-3}                          # this entry's method's own training fields
        tolerance: {max_r1_drop: 5.0}                # optional, replaces the suite's tolerance
      - benchmark: synthetic
        method: zero-shot
        seeds: [0]                                   # optional, replaces the suite's seeds

The fields shared with sweep specs (`per_benchmark` overrides, `storage`, `budget`) are described in
`vtrlab.experiment`; an entry's knobs and training fields are its method's own layer there.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, model_validator

from vtrlab.config import StrictModel, TrainSpec, format_validation_error, load_model
from vtrlab.errors import ConfigError
from vtrlab.experiment import NAME_PATTERN, ExperimentSpec, RunBudget
from vtrlab.train.metric_names import METRIC_KEYS, direction

# higher is better for each of these, so "a drop" is always "mean < baseline - allowed"
METRICS = tuple(key for key in METRIC_KEYS if direction(key) == "max")


class Tolerance(StrictModel):
    """How far the mean may fall below a baseline: the larger of the configured allowances."""

    max_r1_drop: Annotated[float | None, Field(ge=0, description="absolute points of the metric")] = None
    seed_sigmas: Annotated[float | None, Field(ge=0, description="k: allowed drop = k x std over seeds")] = None

    @model_validator(mode="after")
    def _one_given(self) -> Tolerance:
        if self.max_r1_drop is None and self.seed_sigmas is None:
            raise ValueError("give max_r1_drop (absolute points) and/or seed_sigmas (k x std over seeds)")
        return self

    def allowed_drop(self, std: float) -> float:
        """The allowed drop for a result whose seeds have standard deviation `std`."""
        candidates = [self.max_r1_drop or 0.0]
        if self.seed_sigmas is not None:
            candidates.append(self.seed_sigmas * std)
        return max(candidates)


class Entry(StrictModel):
    """One configuration retrained over the suite's seeds."""

    name: Annotated[str | None, Field(pattern=NAME_PATTERN, description="default: <benchmark>.<method>")] = None
    benchmark: str
    method: str
    knobs: dict[str, Any] = Field(default_factory=dict)
    train: dict[str, Any] = Field(default_factory=dict)
    seeds: Annotated[list[int] | None, Field(min_length=1, description="default: the suite's seeds")] = None
    tolerance: Tolerance | None = None

    @property
    def key(self) -> str:
        """The entry's name in reports and MLflow metrics (`<key>.t2v_R1_mean`)."""
        return self.name or f"{self.benchmark}.{self.method}"


class Suite(ExperimentSpec):
    seeds: Annotated[list[int], Field(min_length=1)] = [0, 1, 2]
    metric: Literal[METRICS] = "t2v_R1"  # type: ignore[valid-type]
    tolerance: Tolerance
    budget: RunBudget = Field(default_factory=RunBudget)
    entries: Annotated[list[Entry], Field(min_length=1)]

    forbidden_train_fields = ("seed",)  # seeds come from the suite's `seeds` lists

    @property
    def benchmark_names(self) -> list[str]:
        """The suite's benchmarks, each once, in entry order."""
        return list(dict.fromkeys(entry.benchmark for entry in self.entries))

    @property
    def methods(self) -> set[str]:
        return {entry.method for entry in self.entries}

    def tolerance_of(self, entry: Entry) -> Tolerance:
        return entry.tolerance or self.tolerance

    def seeds_of(self, entry: Entry) -> list[int]:
        return entry.seeds or self.seeds

    def train_spec_of(self, entry: Entry, seed: int) -> TrainSpec:
        """The resolved TrainSpec of `entry` with `seed` (layered as `vtrlab.experiment` describes)."""
        knobs, fields = self.layered(entry.benchmark, entry.method, entry.knobs, entry.train)
        return self.train_spec(entry.benchmark, entry.method, knobs, fields, seed=seed)

    def entry_fingerprint(self, entry: Entry) -> str:
        """A short hash of what the entry trains (not its data location or tolerance): earlier runs are its
        baseline only when this matches."""
        knobs, fields = self.layered(entry.benchmark, entry.method, entry.knobs, entry.train)
        payload = {
            "benchmark": entry.benchmark,
            "method": entry.method,
            "knobs": knobs,
            "train": fields,
            "backbone": self.backbone,
            "weights": self.weights,
            "seeds": self.seeds_of(entry),
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:12]

    def fingerprint(self) -> str:
        payload = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:12]


def _check_entry(suite: Suite, index: int, entry: Entry, source: str) -> None:
    from vtrlab.config import check_train_fields
    from vtrlab.data.card import load_card
    from vtrlab.model.methods import list_methods, parse_knobs

    where = f"entries.{index}"
    try:
        load_card(entry.benchmark)
    except ConfigError as err:
        raise ConfigError(f"{source}: {where}.benchmark: {err}") from None
    if entry.method not in list_methods():
        raise ConfigError(
            f"{source}: {where}.method: unknown method {entry.method!r}; allowed: {', '.join(list_methods())}"
        )
    parse_knobs(entry.method, entry.knobs, source=f"{source}: {where}.knobs")
    check_train_fields(entry.train, f"{where}.train", source, forbid=("seed",))
    seeds = suite.seeds_of(entry)
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"{source}: {where}.seeds: {seeds} repeats a seed")
    tolerance = suite.tolerance_of(entry)
    if tolerance.seed_sigmas is not None and tolerance.max_r1_drop is None and len(seeds) < 2:
        key = f"{where}.tolerance" if entry.tolerance else "tolerance"
        raise ConfigError(
            f"{source}: {key}.seed_sigmas: the only tolerance of {entry.key}, which has one seed ({seeds}): "
            "give at least two seeds or a max_r1_drop"
        )
    try:
        suite.train_spec_of(entry, seeds[0])  # validates the training fields and sizes the knobs
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, f"{source}: {where}")) from None
    except ConfigError as err:  # e.g. knobs sized below the benchmark's frames or words
        raise ConfigError(f"{source}: {where}: {err}") from None


def _check(suite: Suite, source: str) -> None:
    from vtrlab.model.backbone import check_backbone

    suite.check_common(source, suite.methods)  # first: a bad shared field is named where it is written
    for index, entry in enumerate(suite.entries):
        _check_entry(suite, index, entry, source)
    check_backbone(suite.backbone, suite.weights, source)
    if len(set(suite.seeds)) != len(suite.seeds):
        raise ConfigError(f"{source}: seeds: {suite.seeds} repeats a seed")
    keys = [entry.key for entry in suite.entries]
    for key in {k for k in keys if keys.count(k) > 1}:
        raise ConfigError(f"{source}: entries: two entries are named {key!r}; give them distinct `name`s")


def load_suite(path: str | Path) -> Suite:
    """Read and validate a regression suite; every error names the file and the key. Paths in `weights`,
    `data` and `storage` have `~` and environment variables expanded."""
    source = str(path)
    suite = load_model(path, Suite).expanded(source)
    _check(suite, source)
    return suite
