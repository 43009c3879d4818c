"""The sweep spec (`sweeps/*.yaml`): methods x benchmarks, conditional search spaces, budget, objective.

Example (see sweeps/quickstart.yaml)::

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
    budget: {trials: 4, max_concurrent: 2, grace_period: 1, reduction_factor: 2}
    objective: {metric: t2v_R1, mode: max}             # add `second: trainable_params` for NSGA-II Pareto
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from vtrlab.config import StrictModel, TrainSpec, load_yaml, validate_model
from vtrlab.errors import ConfigError

OBJECTIVE_METRICS = ("t2v_R1", "v2t_R1", "rsum", "t2v_rsum", "v2t_rsum", "t2v_R5", "t2v_R10", "t2v_MnR", "v2t_MnR")
TRAIN_FIELDS = set(TrainSpec.model_fields) - {"benchmark", "method", "knobs", "data"}


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


class MethodPlan(StrictModel):
    knobs: dict[str, Any] = Field(default_factory=dict)
    train: dict[str, Any] = Field(default_factory=dict)
    search: dict[str, Range] = Field(default_factory=dict)


class Budget(StrictModel):
    trials: Annotated[int, Field(gt=0, description="trials per (benchmark, method) with a search space")] = 4
    max_concurrent: Annotated[int, Field(gt=0)] = 2
    grace_period: Annotated[int, Field(gt=0, description="ASHA: epochs before a trial can be stopped")] = 1
    reduction_factor: Annotated[float, Field(gt=1)] = 2.0
    cpus_per_trial: Annotated[float, Field(gt=0, description="resources of the trial driver itself")] = 0.1


class Objective(StrictModel):
    metric: Literal[OBJECTIVE_METRICS] = "t2v_R1"  # type: ignore[valid-type]
    mode: Literal["max", "min"] = "max"
    second: Literal["trainable_params"] | None = None
    sampler: Literal["tpe", "nsga2"] | None = None

    @model_validator(mode="after")
    def _sampler(self) -> Objective:
        if self.sampler is None:
            self.sampler = "nsga2" if self.second else "tpe"
        return self


class SweepSpec(StrictModel):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$")]
    description: str = ""
    backbone: str = "vtr-tiny"
    weights: str | None = None
    benchmarks: Annotated[list[str], Field(min_length=1)]
    data: dict[str, str] = Field(default_factory=dict)
    storage: str | None = Field(None, description="checkpoint storage (s3://bucket/prefix); default $VTRLAB_HOME")
    train: dict[str, Any] = Field(default_factory=dict)
    methods: Annotated[dict[str, MethodPlan], Field(min_length=1)]
    budget: Budget = Field(default_factory=Budget)
    objective: Objective = Field(default_factory=Objective)
    register_best: bool = Field(True, description="register the best trial per benchmark in MLflow")

    def fingerprint(self) -> str:
        """A short hash of the spec's content: the sweep's identity for resuming and MLflow."""
        payload = json.dumps(self.model_dump(mode="json", by_alias=True), sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:12]


def _check_names(spec: SweepSpec, source: str) -> None:
    from vtrlab.data.card import CARD_NAMES
    from vtrlab.model.methods import get_method, list_methods

    for benchmark in spec.benchmarks + list(spec.data):
        if benchmark not in CARD_NAMES:
            raise ConfigError(
                f"{source}: benchmarks: unknown benchmark {benchmark!r}; allowed: {', '.join(CARD_NAMES)}"
            )
    for key in spec.train:
        if key not in TRAIN_FIELDS:
            raise ConfigError(
                f"{source}: train.{key}: unknown training field; allowed: {', '.join(sorted(TRAIN_FIELDS))}"
            )
    for method, plan in spec.methods.items():
        if method not in list_methods():
            raise ConfigError(f"{source}: methods.{method}: unknown method; allowed: {', '.join(list_methods())}")
        knob_names = set(get_method(method).knobs.model_fields)
        for key in plan.train:
            if key not in TRAIN_FIELDS:
                raise ConfigError(f"{source}: methods.{method}.train.{key}: unknown training field")
        for key in plan.search:
            if key not in knob_names and key not in TRAIN_FIELDS:
                raise ConfigError(
                    f"{source}: methods.{method}.search.{key}: neither a knob of {method} "
                    f"({', '.join(sorted(knob_names)) or 'none'}) nor a training field"
                )


def load_sweep_spec(path: str | Path) -> SweepSpec:
    """Read and validate a sweep spec; every error names the file and the key."""
    source = str(path)
    data = load_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level")
    spec = validate_model(SweepSpec, data, source)
    _check_names(spec, source)
    return spec
