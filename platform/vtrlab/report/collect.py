"""Trial runs out of the tracking store: the measured side of a comparison.

A trial run is any run tagged `vtrlab.kind` = trial (a sweep's trials) or train (`vtrlab train`); its
method, benchmark, backbone and sweep come from the tags every vtrlab run carries. Only runs that ended
FINISHED or were stopped by ASHA (KILLED) are compared; failed and still-running ones are counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from vtrlab.errors import NotFoundError
from vtrlab.tracking.client import Tracker
from vtrlab.tracking.records import TAG_KIND, TAG_STOPPED, RunRecord, RunState

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


def _devices(params: dict[str, str]) -> int:
    try:
        return int(float(params.get("workers", 1)) * float(params.get("gpus_per_worker", 0)))
    except ValueError:
        return 0


def _record(run: RunRecord, experiment: str) -> TrialRecord:
    tags, params = run.tags, run.params
    return TrialRecord(
        run_id=run.run_id,
        run_name=run.name,
        experiment=experiment,
        parent_run_id=run.parent_id,
        sweep=tags.get("sweep", ""),
        method=tags.get("method", "?"),
        benchmark=tags.get("benchmark", "?"),
        backbone=tags.get("backbone", "?"),
        status=run.status.value,
        metrics=dict(run.metrics),
        params=dict(params),
        hours=run.hours,
        devices=_devices(params),
        stopped_early=run.status == RunState.KILLED or TAG_STOPPED in tags,
    )


def resolve_experiments(tracker: Tracker, names: list[str] | None) -> dict[str, str]:
    """{experiment id: name} of `names`, or of every sweep experiment when none are named."""
    if names:
        found = {}
        for name in names:
            experiment = tracker.experiment(name)
            if experiment is None:
                known = ", ".join(e.name for e in tracker.experiments()) or "none"
                raise NotFoundError(f"experiment {name!r} does not exist in {tracker.uri}; known: {known}")
            found[experiment.experiment_id] = experiment.name
        return found
    found = {e.experiment_id: e.name for e in tracker.experiments() if e.name.startswith(SWEEP_PREFIX)}
    if not found:
        raise NotFoundError(
            f"no sweep experiments in {tracker.uri}; run `vtrlab sweep SPEC` (or `vtrlab quickstart`) first"
        )
    return found


@dataclass
class Collected:
    """The comparable trials, and how many runs were left out because they failed or are still running."""

    trials: list[TrialRecord]
    failed: int = 0
    running: int = 0


def collect_trials(
    tracker: Tracker, experiments: list[str] | None = None, benchmark: str | None = None, history: bool = True
) -> Collected:
    """Every finished or ASHA-stopped trial run with metrics in `experiments` (default: all sweep
    experiments), optionally of one benchmark; `history` also fetches each run's per-epoch T2V R@1 and
    training loss for learning curves. Failed and running runs are counted, not compared."""
    chosen = resolve_experiments(tracker, experiments)
    collected = Collected([])
    for kind in MEASURED_KINDS:  # tag filters take no IN
        query = f"tags.`{TAG_KIND}` = '{kind}'" + (f" and tags.benchmark = '{benchmark}'" if benchmark else "")
        for experiment_id, name in chosen.items():
            for run in tracker.search_runs([experiment_id], query):
                if run.status == RunState.FAILED:
                    collected.failed += 1
                elif run.status in (RunState.RUNNING, RunState.SCHEDULED):
                    collected.running += 1
                elif run.metrics:
                    collected.trials.append(_record(run, name))
    if not collected.trials:
        what = f"benchmark {benchmark!r} in " if benchmark else ""
        left = (
            f" ({collected.failed} failed, {collected.running} running)"
            if collected.failed or collected.running
            else ""
        )
        raise NotFoundError(
            f"no finished trial runs with metrics for {what}experiment(s) {', '.join(sorted(chosen.values()))} in "
            f"{tracker.uri}{left}; run a sweep into it first"
        )
    if history:
        for record in collected.trials:
            for key in ("t2v_R1", "train_loss"):
                record.history[key] = tracker.metric_history(record.run_id, key)
    return collected
