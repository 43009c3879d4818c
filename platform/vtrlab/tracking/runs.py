"""MLflow runs of sweeps and trials: creation (idempotent by tag), parameters, per-epoch metrics."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

from vtrlab.tracking.store import default_artifact_root, tracking_uri

TAG_KIND = "vtrlab.kind"  # sweep | trial | train | regression
TAG_KEY = "vtrlab.key"  # a stable identity, so a restarted trial finds its run again
MAX_PARAM_LENGTH = 6000


def client(uri: str | None = None) -> MlflowClient:
    return MlflowClient(tracking_uri=uri or tracking_uri())


def experiment_id(mlflow: MlflowClient, name: str) -> str:
    """The id of experiment `name`, created (with the embedded artifact root) when missing."""
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is not None:
        if experiment.lifecycle_stage == "deleted":
            mlflow.restore_experiment(experiment.experiment_id)
        return experiment.experiment_id
    return mlflow.create_experiment(name, artifact_location=_artifact_location(name))


def _artifact_location(name: str) -> str | None:
    root = default_artifact_root()
    return f"{root}/{name}" if root else None


def find_or_create_run(
    mlflow: MlflowClient,
    experiment: str,
    key: str,
    run_name: str,
    tags: Mapping[str, str],
    parent_run_id: str | None = None,
) -> tuple[str, bool]:
    """(run id, created): the run tagged `vtrlab.key = key` in `experiment`, or a new one.

    This is what makes a restarted trial or a resumed sweep log into the same run.
    """
    exp_id = experiment_id(mlflow, experiment)
    found = mlflow.search_runs([exp_id], filter_string=f"tags.`{TAG_KEY}` = '{key}'", max_results=1)
    if found:
        run_id = found[0].info.run_id
        if found[0].info.status != "RUNNING":
            mlflow.update_run(run_id, status="RUNNING")
        return run_id, False
    all_tags = {TAG_KEY: key, **tags}
    if parent_run_id:
        all_tags["mlflow.parentRunId"] = parent_run_id
    run = mlflow.create_run(exp_id, run_name=run_name, tags=all_tags)
    return run.info.run_id, True


def flatten_params(values: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested dicts become dotted keys (knob.width); values are strings, truncated to MLflow's limit."""
    flat: dict[str, str] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_params(value, f"{name}."))
        else:
            flat[name] = str(value)[:MAX_PARAM_LENGTH]
    return flat


def log_params_once(mlflow: MlflowClient, run_id: str, params: Mapping[str, str]) -> None:
    """Log params not yet on the run (MLflow refuses to change a param; a rerun logs the same ones)."""
    existing = mlflow.get_run(run_id).data.params
    new = [Param(k, v) for k, v in params.items() if k not in existing]
    for start in range(0, len(new), 100):
        mlflow.log_batch(run_id, params=new[start : start + 100])


def logged_steps(mlflow: MlflowClient, run_id: str, key: str) -> set[int]:
    return {metric.step for metric in mlflow.get_metric_history(run_id, key)}


def log_epoch_metrics(
    mlflow: MlflowClient, run_id: str, epoch: int, metrics: Mapping[str, float], marker: str = "rsum"
) -> bool:
    """Log one epoch's metrics in one batch, unless that epoch is already there (after a restart).

    Returns whether anything was logged. `marker` is the metric whose history says which epochs exist.
    """
    if epoch in logged_steps(mlflow, run_id, marker):
        return False
    now = int(time.time() * 1000)
    batch = [Metric(k, float(v), now, epoch) for k, v in metrics.items() if isinstance(v, (int, float))]
    mlflow.log_batch(run_id, metrics=batch)
    return True
