"""Trial runs out of MLflow: the measured side of a comparison.

A trial run is any run tagged `vtrlab.kind` = trial (a sweep's trials) or train (`vtrlab train`); its
method, benchmark, backbone and sweep come from the tags every vtrlab run carries.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from vtrlab.errors import NotFoundError
from vtrlab.tracking.runs import TAG_KIND

MEASURED_KINDS = ("trial", "train")
SWEEP_PREFIX = "sweep-"


@dataclass
class TrialRecord:
    """One trial run: its identity, last logged metrics and the cost of running it."""

    run_id: str
    run_name: str
    experiment: str
    parent_run_id: str | None
    sweep: str
    method: str
    benchmark: str
    backbone: str
    status: str
    metrics: dict[str, float]
    params: dict[str, str]
    hours: float
    devices: int  # GPUs the run held (workers x gpus_per_worker); 0 on CPU
    stopped_early: bool = False
    history: dict[str, list[tuple[int, float]]] = field(default_factory=dict)

    @property
    def gpu_hours(self) -> float:
        return self.hours * self.devices


def _hours(run: Run) -> float:
    end = run.info.end_time or run.info.start_time
    return max(0.0, (end - run.info.start_time) / 3_600_000) if run.info.start_time else 0.0


def _devices(params: dict[str, str]) -> int:
    try:
        return int(float(params.get("workers", 1)) * float(params.get("gpus_per_worker", 0)))
    except ValueError:
        return 0


def _record(run: Run, experiment: str) -> TrialRecord:
    tags, params = run.data.tags, run.data.params
    return TrialRecord(
        run_id=run.info.run_id,
        run_name=run.info.run_name or run.info.run_id,
        experiment=experiment,
        parent_run_id=tags.get("mlflow.parentRunId"),
        sweep=tags.get("sweep", ""),
        method=tags.get("method", "?"),
        benchmark=tags.get("benchmark", "?"),
        backbone=tags.get("backbone", "?"),
        status=run.info.status,
        metrics=dict(run.data.metrics),
        params=dict(params),
        hours=_hours(run),
        devices=_devices(params),
        stopped_early="asha_stopped" in tags,
    )


def resolve_experiments(client: MlflowClient, names: list[str] | None) -> dict[str, str]:
    """{experiment id: name} of `names`, or of every sweep experiment when none are named."""
    if names:
        found = {}
        for name in names:
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                known = ", ".join(e.name for e in client.search_experiments()) or "none"
                raise NotFoundError(f"experiment {name!r} does not exist in {client.tracking_uri}; known: {known}")
            found[experiment.experiment_id] = experiment.name
        return found
    found = {e.experiment_id: e.name for e in client.search_experiments() if e.name.startswith(SWEEP_PREFIX)}
    if not found:
        raise NotFoundError(
            f"no sweep experiments in {client.tracking_uri}; run `vtrlab sweep SPEC` (or `vtrlab quickstart`) first"
        )
    return found


def collect_trials(
    client: MlflowClient, experiments: list[str] | None = None, benchmark: str | None = None, history: bool = True
) -> list[TrialRecord]:
    """Every trial run with metrics in `experiments` (default: all sweep experiments), optionally of one
    benchmark; `history` also fetches each run's per-epoch T2V R@1 and training loss for learning curves."""
    chosen = resolve_experiments(client, experiments)
    runs: list[TrialRecord] = []
    for kind in MEASURED_KINDS:  # tag filters take no IN
        query = f"tags.`{TAG_KIND}` = '{kind}'" + (f" and tags.benchmark = '{benchmark}'" if benchmark else "")
        for experiment_id, name in chosen.items():
            page_token = None
            while True:
                page = client.search_runs([experiment_id], query, max_results=1000, page_token=page_token)
                runs.extend(_record(run, name) for run in page if run.data.metrics)
                page_token = page.token
                if not page_token:
                    break
    if not runs:
        what = f"benchmark {benchmark!r} in " if benchmark else ""
        raise NotFoundError(
            f"no trial runs with metrics for {what}experiment(s) {', '.join(sorted(chosen.values()))} in "
            f"{client.tracking_uri}; run a sweep into it first"
        )
    if history:
        for record in runs:
            for key in ("t2v_R1", "train_loss"):
                points = client.get_metric_history(record.run_id, key)
                record.history[key] = sorted((int(m.step), float(m.value)) for m in points)
    return runs
