"""What sweep specs (`sweeps/*.yaml`) and regression suites (`sweeps/regression*.yaml`) have in common:
the backbone, where each benchmark's shards are, shared checkpoint storage, training fields, per-benchmark
overrides, and the budget of how trials run.

Training fields and knobs are layered, later layers winning:

    train  <  per_benchmark.<B>.train  <  <method's own train>  <  per_benchmark.<B>.methods.<M>.train
    knobs: <method's own knobs>  <  per_benchmark.<B>.methods.<M>.knobs

(sampled values of a sweep and a suite entry's seed come last). So `sweeps/paper.yaml` states the papers'
15 epochs at batch 64 with 32 frames and 64 words once, for DiDeMo and ActivityNet only.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import Field

from vtrlab.config import StrictModel, TrainSpec, check_train_fields, expand_path
from vtrlab.errors import ConfigError

NAME_PATTERN = r"^[A-Za-z0-9_.-]+$"


class MethodOverride(StrictModel):
    """Knobs and training fields of one method on one benchmark."""

    knobs: dict[str, Any] = Field(default_factory=dict)
    train: dict[str, Any] = Field(default_factory=dict)


class BenchmarkOverride(StrictModel):
    """Training fields for every method on one benchmark, and per-method overrides there."""

    train: dict[str, Any] = Field(default_factory=dict)
    methods: dict[str, MethodOverride] = Field(default_factory=dict)


class RunBudget(StrictModel):
    """How trials run: how many at once, the CPUs of each trial's driver, and the retries of a failed trial."""

    max_concurrent: Annotated[int, Field(gt=0, description="trials run at once")] = 2
    cpus_per_trial: Annotated[float, Field(gt=0, description="CPUs of each trial's driver (its Tune function)")] = 0.1
    trial_retries: Annotated[int, Field(ge=0, description="times a failed trial is retried")] = 1
    driver_resource: str | None = Field(
        None,
        description="a custom Ray resource that only non-spot nodes offer (e.g. vtrlab_driver): trial drivers "
        "are placed there, so a spot preemption loses at most a training worker, which Ray Train restarts",
    )

    def trial_keys(self, train_key: str) -> dict[str, str]:
        """What sets each resource of a trial, for error messages (`train_key`: where training fields are)."""
        keys = {
            "CPU": f"{train_key}.workers x {train_key}.cpus_per_worker + budget.cpus_per_trial",
            "GPU": f"{train_key}.workers x {train_key}.gpus_per_worker",
        }
        if self.driver_resource:
            keys[self.driver_resource] = "budget.driver_resource: no node offers it"
        return keys


class ExperimentSpec(StrictModel):
    """The fields sweep specs and regression suites share."""

    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    description: str = ""
    backbone: str = "vtr-tiny"
    weights: str | None = None
    data: dict[str, str] = Field(default_factory=dict)
    storage: str | None = Field(None, description="shared storage (s3://bucket/prefix) for checkpoints and state")
    train: dict[str, Any] = Field(default_factory=dict)
    per_benchmark: dict[str, BenchmarkOverride] = Field(default_factory=dict)

    forbidden_train_fields: ClassVar[tuple[str, ...]] = ()  # e.g. `seed` in suites (seeds are listed)

    @property
    def benchmark_names(self) -> list[str]:
        """The benchmarks the spec runs, each once, in order (sweeps and suites say it differently)."""
        raise NotImplementedError

    def data_url(self, benchmark: str) -> str:
        """Where `benchmark`'s shards are: `data.<benchmark>`, else the card's `shards`, else
        $VTRLAB_HOME/data/<benchmark>."""
        from vtrlab.paths import default_data_url

        return self.data.get(benchmark) or default_data_url(benchmark)

    def layered(
        self, benchmark: str, method: str, knobs: dict[str, Any], train: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """(knobs, training fields) of `method` on `benchmark` with the overrides applied (see the module
        docstring); `knobs` and `train` are the method's own."""
        override = self.per_benchmark.get(benchmark, BenchmarkOverride())
        own = override.methods.get(method, MethodOverride())
        fields = {**self.train, **override.train, **train, **own.train}
        return {**knobs, **own.knobs}, fields

    def train_spec(
        self, benchmark: str, method: str, knobs: dict[str, Any], fields: dict[str, Any], seed: int | None = None
    ) -> TrainSpec:
        """The resolved TrainSpec of a run from already layered knobs and fields (plus `seed`)."""
        values = {**fields, **({"seed": seed} if seed is not None else {})}
        return TrainSpec(
            benchmark=benchmark,
            method=method,
            knobs=knobs,
            backbone=self.backbone,
            weights=self.weights,
            data=self.data_url(benchmark),
            **values,
        ).resolved()

    def expanded(self, source: str) -> ExperimentSpec:
        """A copy with `~` and `$VARS` expanded in weights, data and storage."""
        updates: dict[str, Any] = {"data": {b: expand_path(u, f"data.{b}", source) for b, u in self.data.items()}}
        if self.weights:
            updates["weights"] = expand_path(self.weights, "weights", source)
        if self.storage:
            updates["storage"] = expand_path(self.storage, "storage", source)
        return self.model_copy(update=updates)

    def check_common(self, source: str, methods: set[str]) -> None:
        """Names the spec uses exist: benchmarks (data, per_benchmark), training fields, per-benchmark methods
        (one the spec runs) and their knobs."""
        from vtrlab.data.card import load_card
        from vtrlab.model.methods import parse_knobs

        runs = set(self.benchmark_names)
        for benchmark in self.benchmark_names:
            try:
                load_card(benchmark)
            except ConfigError as err:
                raise ConfigError(f"{source}: benchmarks: {err}") from None
        for key, benchmarks in (("data", self.data), ("per_benchmark", self.per_benchmark)):
            for benchmark in benchmarks:
                if benchmark not in runs:
                    raise ConfigError(
                        f"{source}: {key}.{benchmark}: this spec does not run benchmark {benchmark!r}; "
                        f"it runs {', '.join(self.benchmark_names)}"
                    )
        check_train_fields(self.train, "train", source, forbid=self.forbidden_train_fields)
        for benchmark, override in self.per_benchmark.items():
            where = f"per_benchmark.{benchmark}"
            check_train_fields(override.train, f"{where}.train", source, forbid=self.forbidden_train_fields)
            for method, own in override.methods.items():
                if method not in methods:
                    raise ConfigError(
                        f"{source}: {where}.methods.{method}: this spec does not run method {method!r}; "
                        f"it runs {', '.join(sorted(methods))}"
                    )
                check_train_fields(own.train, f"{where}.methods.{method}.train", source, self.forbidden_train_fields)
                parse_knobs(method, own.knobs, source=f"{source}: {where}.methods.{method}.knobs")
