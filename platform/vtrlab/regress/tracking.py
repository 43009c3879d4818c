"""What a regression reads from and writes to MLflow: the champions it needs (read only: the registry is
never changed), its run in `regression-<suite>` with params, metrics, verdict tags and the report, and the
child run of each champion evaluation."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

from vtrlab.errors import NotFoundError
from vtrlab.regress.baselines import TAG_MODE, EntryResult
from vtrlab.regress.report import overall
from vtrlab.regress.suite import Suite
from vtrlab.regress.verdicts import NOT_OK
from vtrlab.tracking.provenance import git_commit, package_versions
from vtrlab.tracking.registry import champion_version, registered_model_name
from vtrlab.tracking.runs import TAG_KIND, find_or_create_run, flatten_params, log_params_once


def regression_tags(suite: Suite, **extra: str) -> dict[str, str]:
    """The tags every run of a regression carries (its own, its seed runs', its champion evaluations')."""
    return {"regression": "true", "suite": suite.name, "backbone": suite.backbone, **extra}


def find_champions(mlflow: MlflowClient, suite: Suite, source: str) -> dict[str, Any]:
    """{benchmark: champion ModelVersion} for every benchmark of the suite; NotFoundError naming each
    benchmark without one and its registered model."""
    found, missing = {}, []
    for benchmark in suite.benchmarks:
        model = registered_model_name(benchmark, suite.backbone)
        version = champion_version(mlflow, model)
        if version is None:
            missing.append(f"benchmark {benchmark} (model {model})")
        else:
            found[benchmark] = version
    if missing:
        raise NotFoundError(
            f"{source}: no champion in the registry at {mlflow.tracking_uri} for {'; '.join(missing)}: no version "
            f"holds the alias 'champion'. Run a sweep of that benchmark on {suite.backbone} first (`vtrlab sweep`), "
            "which registers its best trial; regress compares with the champion and never changes the registry"
        )
    return found


def start_run(
    mlflow: MlflowClient,
    experiment: str,
    key: str,
    run_name: str,
    suite: Suite,
    suite_path: Path,
    mode: str,
    manifests: dict[str, dict],
) -> str:
    """Create the regression's run (tags, params, the suite file as `suite/<name>`); returns its id."""
    tags = {
        TAG_KIND: "regression",
        **regression_tags(suite),
        TAG_MODE: mode,
        "git_commit": git_commit(),
    }
    run_id, _ = find_or_create_run(mlflow, experiment, key=key, run_name=run_name, tags=tags)
    params = {
        "suite_file": str(suite_path),
        "suite_fingerprint": suite.fingerprint(),
        "mode": mode,
        "metric": suite.metric,
        "seeds": suite.seeds,
        "tolerance.max_r1_drop": suite.tolerance.max_r1_drop,
        "tolerance.seed_sigmas": suite.tolerance.seed_sigmas,
        "git_commit": git_commit(),
        **{f"data_version.{b}": m.get("version", "?") for b, m in manifests.items()},
        **{f"version.{k}": v for k, v in package_versions().items()},
    }
    log_params_once(mlflow, run_id, flatten_params(params))
    mlflow.log_text(run_id, suite_path.read_text(), f"suite/{suite_path.name}")
    return run_id


def log_fingerprints(mlflow: MlflowClient, run_id: str, fingerprints: dict[str, str]) -> None:
    """`entry.<key>.fingerprint` params: what later runs match to find this one as their previous run."""
    log_params_once(mlflow, run_id, {f"entry.{key}.fingerprint": value for key, value in fingerprints.items()})


def log_evaluation(
    mlflow: MlflowClient,
    experiment: str,
    key: str,
    parent_id: str,
    suite: Suite,
    plan: Any,
    version: Any,
    measured: dict[str, Any],
) -> str:
    """A child run of the regression for one champion evaluation (its metrics, or the error); returns its id."""
    tags = {
        TAG_KIND: "evaluation",
        "method": version.tags.get("method", "?"),
        "benchmark": plan.benchmark,
        **regression_tags(suite),
        "registered_model": version.name,
        "model_version": str(version.version),
    }
    run_name = f"{plan.benchmark}-champion-v{version.version}"
    child_id, _ = find_or_create_run(mlflow, experiment, key=key, run_name=run_name, tags=tags, parent_run_id=parent_id)
    log_params_once(mlflow, child_id, flatten_params({**plan.__dict__, "weights": suite.weights}))
    now = int(time.time() * 1000)
    numeric = [Metric(k, float(v), now, 0) for k, v in measured.items() if isinstance(v, (int, float))]
    if numeric:
        mlflow.log_batch(child_id, metrics=numeric)
    if "error" in measured:
        mlflow.set_tag(child_id, "error", str(measured["error"])[:5000])
    mlflow.set_terminated(child_id, status="FAILED" if "error" in measured else "FINISHED")
    return child_id


def finish_run(
    mlflow: MlflowClient, run_id: str, metric: str, results: list[EntryResult], report: dict[str, Path], wall: float
) -> None:
    """Per entry: each seed's value (step = seed index), `_mean`, `_std`, `allowed_drop`, the baselines and
    `verdict` (1 not regressed, 0 regressed or failed), a `verdict.<entry>` tag; the overall `verdict` tag,
    the report files under `report/`; then the run is FINISHED."""
    now = int(time.time() * 1000)
    batch = [Metric("wall_seconds", wall, now, 0)]
    for r in results:
        batch.append(Metric(f"{r.key}.verdict", 0.0 if r.verdict in NOT_OK else 1.0, now, 0))
        batch.append(Metric(f"{r.key}.allowed_drop", r.allowed_drop, now, 0))
        batch += [Metric(f"{r.key}.{metric}", v, now, i) for i, v in enumerate(r.values) if v is not None]
        if not r.failed:
            batch.append(Metric(f"{r.key}.{metric}_mean", r.mean, now, 0))
            batch.append(Metric(f"{r.key}.{metric}_std", r.std, now, 0))
        for baseline in (r.champion, r.previous):
            if baseline is not None and baseline.value is not None:
                batch.append(Metric(f"{r.key}.{baseline.kind}_baseline", baseline.value, now, 0))
    batch.append(Metric("regressions", float(sum(r.verdict in NOT_OK for r in results)), now, 0))
    for start in range(0, len(batch), 500):
        mlflow.log_batch(run_id, metrics=batch[start : start + 500])
    for r in results:
        mlflow.set_tag(run_id, f"verdict.{r.key}", r.verdict)
    mlflow.set_tag(run_id, "verdict", overall(results))
    for path in report.values():
        mlflow.log_artifact(run_id, str(path), artifact_path="report")
    mlflow.set_terminated(run_id, status="FINISHED")
