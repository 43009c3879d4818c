"""The sweep spec (`sweeps/*.yaml`): methods x benchmarks, conditional search spaces, budget, objective.

Example (see sweeps/quickstart.yaml; the fields shared with regression suites, such as `per_benchmark`,
are described in `vtrlab.experiment`)::

    name: quickstart
    backbone: vtr-tiny
    benchmarks: [synthetic]
    data: {synthetic: ~/.vtrlab/data/synthetic}      # optional; default: card's shards or $VTRLAB_HOME/data
    train: {epochs: 3, batch_size: 32}                 # TrainSpec fields shared by every trial
    methods:
      zero-shot: {}
      mv-adapter:
        knobs: {trm_heads: 2}                          # fixed knobs
        train: {lr: 1e-3}                              # fixed training fields for this method
        search:                                        # searched: knobs or TrainSpec fields
          width: {int: [16, 64], step: 16}
          lr: {float: [1e-4, 3e-3], log: true}
    budget: {trials: 4, max_concurrent: 2, grace_period: 1, reduction_factor: 2, trial_retries: 1}
    objective: {metric: t2v_R1, mode: max}             # add `second: trainable_params` for NSGA-II Pareto

Everything is validated before Ray starts: every method's knobs, both ends of every searched range and
every choice (as the trial would build them), every training field, the backbone name and weights file.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, model_validator

from vtrlab.config import TRAIN_FIELDS, StrictModel, check_train_fields, format_validation_error, load_model, shown
from vtrlab.errors import ConfigError
from vtrlab.experiment import ExperimentSpec, RunBudget
from vtrlab.train.metric_names import METRIC_KEYS, direction


class Range(StrictModel):
    """One searched dimension: exactly one of int / float (a [low, high] range) or choice (a list)."""

    int_: Annotated[tuple[int, int] | None, Field(alias="int")] = None
    float_: Annotated[tuple[float, float] | None, Field(alias="float")] = None
    choice: list[Any] | None = None
    log: bool = False
    step: int | float | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Range:
        kinds = [k for k in (self.int_, self.float_, self.choice) if k is not None]
        if len(kinds) != 1:
            raise ValueError("give exactly one of int: [low, high], float: [low, high], choice: [...]")
        bounds = self.int_ or self.float_
        if bounds is not None:
            low, high = bounds
            if not low < high:
                raise ValueError(f"empty or inverted range [{low}, {high}]: low must be below high")
            if self.log and low <= 0:
                raise ValueError(f"log range [{low}, {high}] needs low > 0")
        if self.choice is not None and not self.choice:
            raise ValueError("choice needs at least one value")
        return self

    def extremes(self) -> list[Any]:
        """The values a trial can get at the edges: both ends of a range, every choice."""
        if self.choice is not None:
            return list(self.choice)
        return list(self.int_ or self.float_)  # type: ignore[arg-type]


class MethodPlan(StrictModel):
    knobs: dict[str, Any] = Field(default_factory=dict)
    train: dict[str, Any] = Field(default_factory=dict)
    search: dict[str, Range] = Field(default_factory=dict)


class SweepBudget(RunBudget):
    trials: Annotated[int, Field(gt=0, description="trials per (benchmark, method) with a search space")] = 4
    grace_period: Annotated[int, Field(gt=0, description="ASHA: epochs before a trial can be stopped")] = 1
    reduction_factor: Annotated[float, Field(gt=1)] = 2.0


class Objective(StrictModel):
    metric: Literal[METRIC_KEYS] = "t2v_R1"  # type: ignore[valid-type]
    mode: Literal["max", "min"] | None = None
    second: Literal["trainable_params"] | None = None
    sampler: Literal["tpe", "nsga2"] | None = None

    @model_validator(mode="after")
    def _defaults(self) -> Objective:
        natural = direction(self.metric)
        if self.mode is None:
            self.mode = natural
        elif self.mode != natural:
            raise ValueError(
                f"{self.metric} is better when {'higher' if natural == 'max' else 'lower'}: mode {natural}"
            )
        if self.sampler is None:
            self.sampler = "nsga2" if self.second else "tpe"
        return self


class SweepSpec(ExperimentSpec):
    benchmarks: Annotated[list[str], Field(min_length=1)]
    methods: Annotated[dict[str, MethodPlan], Field(min_length=1)]
    budget: SweepBudget = Field(default_factory=SweepBudget)
    objective: Objective = Field(default_factory=Objective)
    register_best: bool = Field(True, description="register the best trial per benchmark in MLflow")
    seeds: Annotated[list[int], Field(min_length=1, description="the protocol's seeds (vtrlab reproduce)")] = [0]

    @property
    def benchmark_names(self) -> list[str]:
        return list(dict.fromkeys(self.benchmarks))

    def fingerprint(self) -> str:
        """A short hash of the spec's content: the sweep's identity for resuming and MLflow."""
        payload = json.dumps(self.model_dump(mode="json", by_alias=True), sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:12]

    def epochs_of(self, benchmark: str, method: str) -> int:
        """Training epochs of (benchmark, method) after the overrides (zero-shot: one evaluation)."""
        if method == "zero-shot":
            return 1
        _, fields = self.layered(benchmark, method, {}, self.methods[method].train)
        return int(fields.get("epochs", 5))


def changed_keys(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two JSON-like documents."""
    if isinstance(old, dict) and isinstance(new, dict):
        keys: list[str] = []
        for key in sorted(set(old) | set(new), key=str):
            keys += changed_keys(old.get(key), new.get(key), f"{prefix}{key}.")
        return keys
    return [] if old == new else [prefix.rstrip(".") or "<root>"]


def _knob_names(method: str) -> set[str]:
    from vtrlab.model.methods import get_method

    return set(get_method(method).knobs.model_fields)


def split_sampled(method: str, sampled: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(knobs, training fields) of sampled values: a name that is a knob of the method is a knob."""
    knob_names = _knob_names(method)
    knobs = {k: v for k, v in sampled.items() if k in knob_names}
    return knobs, {k: v for k, v in sampled.items() if k not in knob_names}


def trial_spec(spec: SweepSpec, benchmark: str, method: str, sampled: dict[str, Any]):
    """The resolved TrainSpec of one trial: the layered fixed knobs and fields, then the sampled values."""
    plan = spec.methods[method]
    knobs, fields = spec.layered(benchmark, method, plan.knobs, plan.train)
    sampled_knobs, sampled_fields = split_sampled(method, sampled)
    return spec.train_spec(benchmark, method, {**knobs, **sampled_knobs}, {**fields, **sampled_fields})


def _check(spec: SweepSpec, source: str) -> None:
    from vtrlab.model.backbone import check_backbone
    from vtrlab.model.methods import get_method, parse_knobs

    for method in spec.methods:
        try:
            get_method(method)
        except ConfigError as err:
            raise ConfigError(f"{source}: methods.{method}: {err}") from None
    spec.check_common(source, set(spec.methods))
    check_backbone(spec.backbone, spec.weights, source)
    for method, plan in spec.methods.items():
        parse_knobs(method, plan.knobs, source=f"{source}: methods.{method}.knobs")
        check_train_fields(plan.train, f"methods.{method}.train", source)
        knob_names = _knob_names(method)
        for key, dimension in plan.search.items():
            if key not in knob_names and key not in TRAIN_FIELDS:
                raise ConfigError(
                    f"{source}: methods.{method}.search.{key}: neither a knob of {method} "
                    f"({', '.join(sorted(knob_names)) or 'none'}) nor a training field"
                )
            if key not in knob_names:
                for value in dimension.extremes():
                    check_train_fields({key: value}, f"methods.{method}.search", source)
        for benchmark in spec.benchmark_names:
            _check_trials(spec, source, benchmark, method, plan)


def _check_trials(spec: SweepSpec, source: str, benchmark: str, method: str, plan: MethodPlan) -> None:
    """Build the TrainSpec a trial would get at every edge of the space (each dimension at each of its
    extremes, the others at their first), so a value no trial can run is refused before Ray starts. Each
    field and knob was checked on its own (`_check`); what fails here is how they combine."""
    where = f"methods.{method}"
    base = {name: dimension.extremes()[0] for name, dimension in plan.search.items()}
    cases: list[tuple[str, dict[str, Any]]] = [(where, base)]
    for name, dimension in plan.search.items():
        cases += [(f"{where}.search.{name}={shown(value)}", {**base, name: value}) for value in dimension.extremes()]
    for label, sampled in cases:
        try:
            trial_spec(spec, benchmark, method, sampled)
        except ValidationError as err:
            raise ConfigError(format_validation_error(err, f"{source}: {label} on {benchmark}")) from None
        except ConfigError as err:
            raise ConfigError(f"{source}: {label} on {benchmark}: {err}") from None


def load_sweep_spec(path: str | Path) -> SweepSpec:
    """Read and validate a sweep spec; every error names the file and the key."""
    source = str(path)
    spec = load_model(path, SweepSpec).expanded(source)
    _check(spec, source)
    return spec
