"""The MLflow model registry: one registered model per (benchmark, backbone); champion and challenger.

A sweep's best trial becomes a new version (source: the trial run's `adapter/` artifact) tagged with the
sweep and its metrics. The alias `champion` moves to it only when it beats the current champion on the
objective; otherwise the new version gets `challenger`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

CHAMPION, CHALLENGER = "champion", "challenger"


def registered_model_name(benchmark: str, backbone: str) -> str:
    """`vtrlab-<benchmark>-<backbone>` with characters MLflow dislikes replaced."""
    return re.sub(r"[^A-Za-z0-9_.-]", "-", f"vtrlab-{benchmark}-{backbone}")


@dataclass(frozen=True)
class Registration:
    model: str
    version: str
    alias: str
    objective: float
    previous_champion: float | None


def champion_version(client: MlflowClient, model: str):
    """The version holding the `champion` alias, or None."""
    try:
        return client.get_model_version_by_alias(model, CHAMPION)
    except MlflowException:
        return None


def register_adapter(
    client: MlflowClient,
    model: str,
    run_id: str,
    metrics: dict[str, float],
    objective_metric: str,
    mode: str,
    tags: dict[str, str],
) -> Registration:
    """Create a version of `model` from run `run_id`'s adapter and move `champion` or `challenger` to it."""
    try:
        client.get_registered_model(model)
    except MlflowException:
        client.create_registered_model(model, description="vtrlab adapters; alias champion = best so far")
    value = float(metrics[objective_metric])
    version_tags = {
        **tags,
        "objective.metric": objective_metric,
        "objective.mode": mode,
        "objective.value": f"{value:.6f}",
        **{f"metric.{k}": f"{v:.4f}" for k, v in metrics.items() if isinstance(v, (int, float))},
    }
    version = client.create_model_version(model, source=f"runs:/{run_id}/adapter", run_id=run_id, tags=version_tags)
    current = champion_version(client, model)
    previous = None
    if current is not None:  # compare on this sweep's objective, whatever the champion was chosen by
        recorded = current.tags.get(f"metric.{objective_metric}")
        previous = float(recorded) if recorded is not None else None
    better = previous is None or (value > previous if mode == "max" else value < previous)
    alias = CHAMPION if better else CHALLENGER
    client.set_registered_model_alias(model, alias, version.version)
    return Registration(model, str(version.version), alias, value, previous)
