"""What a regression reads from and writes to the tracking store: the champions it needs (read only: the
registry is never changed), its run in `regression-<suite>` with params, metrics, verdict tags and the
report, and the child run of each champion evaluation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vtrlab.errors import NotFoundError
from vtrlab.regress.baselines import TAG_MODE, EntryResult
from vtrlab.regress.report import overall
from vtrlab.regress.suite import Suite
from vtrlab.regress.verdicts import NOT_OK
from vtrlab.tracking.client import Tracker
from vtrlab.tracking.provenance import flatten_params, git_commit, provenance_params
from vtrlab.tracking.records import TAG_KIND, RunState, VersionRecord
from vtrlab.tracking.registry import champion_version, registered_model_name
from vtrlab.train.query_ranks import RANKS_ARTIFACT


def regression_tags(suite: Suite, **extra: str) -> dict[str, str]:
    """The tags every run of a regression carries (its own, its seed runs', its champion evaluations')."""
    return {"regression": "true", "suite": suite.name, "backbone": suite.backbone, **extra}


def find_champions(tracker: Tracker, suite: Suite, source: str) -> dict[str, VersionRecord]:
    """{benchmark: champion version} for every benchmark of the suite; NotFoundError naming each
    benchmark without one and its registered model."""
    found, missing = {}, []
    for benchmark in suite.benchmark_names:
        model = registered_model_name(benchmark, suite.backbone)
        version = champion_version(tracker, model)
        if version is None:
            missing.append(f"benchmark {benchmark} (model {model})")
        else:
            found[benchmark] = version
    if missing:
        raise NotFoundError(
            f"{source}: no champion in the registry at {tracker.uri} for {'; '.join(missing)}: no version "
            f"holds the alias 'champion'. Run a sweep of that benchmark on {suite.backbone} first (`vtrlab sweep`), "
            "which registers its best trial; regress compares with the champion and never changes the registry"
        )
    return found


def start_run(
    tracker: Tracker,
    experiment: str,
    key: str,
    run_name: str,
    suite: Suite,
    suite_path: Path,
    mode: str,
    manifests: dict[str, dict],
) -> str:
    """Create the regression's run (tags, provenance params, the suite file as `suite/<name>`); its id."""
    tags = {TAG_KIND: "regression", **regression_tags(suite), TAG_MODE: mode, "git_commit": git_commit()}
    run, _ = tracker.find_or_create_run(experiment, key=key, name=run_name, tags=tags)
    extra = {
        "mode": mode,
        "metric": suite.metric,
        "seeds": suite.seeds,
        "tolerance.max_r1_drop": suite.tolerance.max_r1_drop,
        "tolerance.seed_sigmas": suite.tolerance.seed_sigmas,
    }
    tracker.log_params(run.run_id, provenance_params(str(suite_path), suite.fingerprint(), manifests, **extra))
    tracker.log_text(run.run_id, suite_path.read_text(), f"suite/{suite_path.name}")
    return run.run_id


def log_fingerprints(tracker: Tracker, run_id: str, fingerprints: dict[str, str]) -> None:
    """`entry.<key>.fingerprint` params: what later runs match to find this one as their previous run."""
    tracker.log_params(run_id, {f"entry.{key}.fingerprint": value for key, value in fingerprints.items()})


def log_evaluation(
    tracker: Tracker,
    experiment: str,
    key: str,
    entry: str,
    parent_id: str,
    suite: Suite,
    plan: Any,
    version: VersionRecord,
    measured: dict[str, Any],
) -> str:
    """A child run of the regression for entry `entry`, one champion evaluation (its metrics and per-query
    ranks, or the error); returns its id."""
    tags = {
        TAG_KIND: "evaluation",
        "entry": entry,
        "method": version.tags.get("method", "?"),
        "benchmark": plan.benchmark,
        **regression_tags(suite),
        "registered_model": version.model,
        "model_version": version.version,
    }
    run, _ = tracker.find_or_create_run(
        experiment, key=key, name=f"{plan.benchmark}-champion-v{version.version}", tags=tags, parent_run_id=parent_id
    )
    tracker.log_params(run.run_id, flatten_params({**plan.__dict__, "weights": suite.weights}))
    tracker.log_metrics(run.run_id, {k: v for k, v in measured.items() if isinstance(v, int | float)})
    if "ranks" in measured:
        tracker.log_text(run.run_id, measured["ranks"], RANKS_ARTIFACT)
    if "error" in measured:
        tracker.end_run(run.run_id, RunState.FAILED, error=str(measured["error"]))
    else:
        tracker.end_run(run.run_id, RunState.FINISHED)
    return run.run_id


def finish_run(
    tracker: Tracker,
    run_id: str,
    metric: str,
    results: list[EntryResult],
    report: dict[str, Path],
    wall: float,
    failed: str | None = None,
) -> None:
    """Per entry: each seed's value (step = seed index), `_mean`, `_std`, `allowed_drop`, the baselines and
    `verdict` (1 not regressed, 0 regressed or failed), a `verdict.<entry>` tag; the overall `verdict` tag,
    the report files under `report/`; then the run is FINISHED, or FAILED with `failed` as its error when
    every run failed."""
    summary: dict[str, float] = {"wall_seconds": wall}
    for r in results:
        summary[f"{r.key}.verdict"] = 0.0 if r.verdict in NOT_OK else 1.0
        summary[f"{r.key}.allowed_drop"] = r.allowed_drop
        tracker.log_series(run_id, f"{r.key}.{metric}", [v for v in r.values if v is not None])
        if not r.failed:
            summary[f"{r.key}.{metric}_mean"] = r.mean
            summary[f"{r.key}.{metric}_std"] = r.std
        for baseline in (r.champion, r.previous):
            if baseline is not None and baseline.value is not None:
                summary[f"{r.key}.{baseline.kind}_baseline"] = baseline.value
    summary["regressions"] = float(sum(r.verdict in NOT_OK for r in results))
    tracker.log_metrics(run_id, summary)
    tracker.set_tags(run_id, {**{f"verdict.{r.key}": r.verdict for r in results}, "verdict": overall(results)})
    for path in report.values():
        tracker.log_file(run_id, path, "report")
    if failed:
        tracker.end_run(run_id, RunState.FAILED, error=failed)
    else:
        tracker.end_run(run_id, RunState.FINISHED)
