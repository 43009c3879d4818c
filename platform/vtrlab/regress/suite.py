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
    entries:
      - benchmark: synthetic
        method: mv-adapter
        knobs: {width: 32}
        train: {lr: 2.0e-3}                          # overrides of `train` for this entry
        tolerance: {max_r1_drop: 5.0}                # optional, replaces the suite's tolerance
      - benchmark: synthetic
        method: zero-shot
        seeds: [0]                                   # optional, replaces the suite's seeds
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, model_validator

from vtrlab.config import StrictModel, TrainSpec, load_yaml, validate_model
from vtrlab.errors import ConfigError
from vtrlab.paths import default_data_url, vtrlab_home

# higher is better for each of these, so "a drop" is always "mean < baseline - allowed"
METRICS = ("t2v_R1", "t2v_R5", "t2v_R10", "v2t_R1", "v2t_R5", "v2t_R10", "rsum", "t2v_rsum", "v2t_rsum")
NAME_PATTERN = r"^[A-Za-z0-9_.-]+$"
_VARIABLE = re.compile(r"\$(\w+)|\$\{(\w+)\}")


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


class Suite(StrictModel):
    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    description: str = ""
    backbone: str = "vtr-tiny"
    weights: str | None = None
    data: dict[str, str] = Field(default_factory=dict)
    storage: str | None = Field(None, description="checkpoint storage (s3://bucket/prefix); default $VTRLAB_HOME")
    train: dict[str, Any] = Field(default_factory=dict)
    seeds: Annotated[list[int], Field(min_length=1)] = [0, 1, 2]
    metric: Literal[METRICS] = "t2v_R1"  # type: ignore[valid-type]
    tolerance: Tolerance
    max_concurrent: Annotated[int, Field(gt=0, description="trials run at once")] = 2
    cpus_per_trial: Annotated[float, Field(gt=0, description="CPUs of each trial's driver")] = 0.1
    entries: Annotated[list[Entry], Field(min_length=1)]

    @property
    def benchmarks(self) -> list[str]:
        """The suite's benchmarks, each once, in entry order."""
        return list(dict.fromkeys(entry.benchmark for entry in self.entries))

    def data_url(self, benchmark: str) -> str:
        """Where `benchmark`'s shards are: `data.<benchmark>`, else the default (card, $VTRLAB_HOME/data)."""
        return self.data.get(benchmark) or default_data_url(benchmark)

    def tolerance_of(self, entry: Entry) -> Tolerance:
        return entry.tolerance or self.tolerance

    def seeds_of(self, entry: Entry) -> list[int]:
        return entry.seeds or self.seeds

    def train_spec(self, entry: Entry, seed: int) -> TrainSpec:
        """The resolved TrainSpec of `entry` with `seed` (suite-wide training fields, then the entry's)."""
        return TrainSpec(
            benchmark=entry.benchmark,
            method=entry.method,
            knobs=entry.knobs,
            backbone=self.backbone,
            weights=self.weights,
            data=self.data_url(entry.benchmark),
            **{**self.train, **entry.train},
            seed=seed,
        ).resolved()

    def entry_fingerprint(self, entry: Entry) -> str:
        """A short hash of what the entry trains (not its data location or tolerance): earlier runs are its
        baseline only when this matches."""
        payload = {
            "benchmark": entry.benchmark,
            "method": entry.method,
            "knobs": entry.knobs,
            "train": {**self.train, **entry.train},
            "backbone": self.backbone,
            "weights": self.weights,
            "seeds": self.seeds_of(entry),
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:12]

    def fingerprint(self) -> str:
        payload = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:12]


def expand_path(value: str, key: str, source: str) -> str:
    """`~` and `$VAR` / `${VAR}` expanded; `$VTRLAB_HOME` defaults to vtrlab's home when unset."""
    variables = {"VTRLAB_HOME": str(vtrlab_home()), **os.environ}

    def substitute(match: re.Match) -> str:
        name = match.group(1) or match.group(2)
        if name not in variables:
            raise ConfigError(f"{source}: {key}: environment variable ${name} is not set (in {value!r})")
        return variables[name]

    return os.path.expanduser(_VARIABLE.sub(substitute, value))


def _check_train(fields: dict[str, Any], key: str, source: str) -> None:
    from vtrlab.sweep.spec import TRAIN_FIELDS

    for name in fields:
        if name == "seed":
            raise ConfigError(f"{source}: {key}.seed: seeds come from the suite's `seeds` list, not {key}")
        if name not in TRAIN_FIELDS:
            raise ConfigError(
                f"{source}: {key}.{name}: unknown training field; allowed: {', '.join(sorted(TRAIN_FIELDS))}"
            )


def _check_entry(suite: Suite, index: int, entry: Entry, source: str) -> None:
    from vtrlab.data.card import CARD_NAMES
    from vtrlab.model.methods import list_methods, parse_knobs

    where = f"entries.{index}"
    if entry.benchmark not in CARD_NAMES:
        raise ConfigError(
            f"{source}: {where}.benchmark: unknown benchmark {entry.benchmark!r}; allowed: {', '.join(CARD_NAMES)}"
        )
    if entry.method not in list_methods():
        raise ConfigError(
            f"{source}: {where}.method: unknown method {entry.method!r}; allowed: {', '.join(list_methods())}"
        )
    parse_knobs(entry.method, entry.knobs, source=f"{source}: {where}.knobs")
    _check_train(entry.train, f"{where}.train", source)
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
        suite.train_spec(entry, seeds[0])  # validates the training fields and sizes the knobs
    except ValidationError as err:
        problems = []
        for item in err.errors():
            name = ".".join(str(part) for part in item["loc"]) or "train"
            prefix = f"{where}.train" if name in entry.train else "train"
            problems.append(f"{source}: {prefix}.{name}: {item['msg']} (got {item.get('input')!r})")
        raise ConfigError("\n".join(problems)) from None
    except ConfigError as err:  # e.g. knobs sized below the benchmark's frames or words
        raise ConfigError(f"{source}: {where}: {err}") from None


def _check(suite: Suite, source: str) -> None:
    from vtrlab.data.card import CARD_NAMES

    for benchmark in suite.data:
        if benchmark not in CARD_NAMES:
            raise ConfigError(f"{source}: data.{benchmark}: unknown benchmark; allowed: {', '.join(CARD_NAMES)}")
    _check_train(suite.train, "train", source)
    if len(set(suite.seeds)) != len(suite.seeds):
        raise ConfigError(f"{source}: seeds: {suite.seeds} repeats a seed")
    keys = [entry.key for entry in suite.entries]
    for key in {k for k in keys if keys.count(k) > 1}:
        raise ConfigError(f"{source}: entries: two entries are named {key!r}; give them distinct `name`s")
    for index, entry in enumerate(suite.entries):
        _check_entry(suite, index, entry, source)


def load_suite(path: str | Path) -> Suite:
    """Read and validate a regression suite; every error names the file and the key. Paths in `weights`,
    `data` and `storage` have `~` and environment variables expanded."""
    source = str(path)
    data = load_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level")
    suite = validate_model(Suite, data, source)
    updates: dict[str, Any] = {"data": {b: expand_path(u, f"data.{b}", source) for b, u in suite.data.items()}}
    if suite.weights:
        updates["weights"] = expand_path(suite.weights, "weights", source)
    if suite.storage:
        updates["storage"] = expand_path(suite.storage, "storage", source)
    suite = suite.model_copy(update=updates)
    _check(suite, source)
    return suite
