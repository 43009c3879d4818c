"""The model registry: one registered model per (benchmark, backbone), aliases `champion` and `challenger`.

Registration is idempotent and race-free:
- a run becomes at most one version (each version is tagged `vtrlab.run_id`; registering the run again
  returns that version);
- creating the registered model tolerates a concurrent creator;
- after every registration the champion is *settled*: the alias is set to the best version on the
  objective among all versions, then the versions are read again and the alias corrected until it is
  stable. Two sweeps registering at once therefore both end with the champion on the better version,
  whichever wrote last.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from vtrlab.tracking.client import Tracker
from vtrlab.tracking.records import VersionRecord

CHAMPION, CHALLENGER = "champion", "challenger"
TAG_RUN = "vtrlab.run_id"
SETTLE_ROUNDS = 10
DESCRIPTION = "vtrlab adapters; alias champion = best version on its objective"


def registered_model_name(benchmark: str, backbone: str) -> str:
    """`vtrlab-<benchmark>-<backbone>` with characters MLflow dislikes replaced (a card file: its `name`)."""
    from vtrlab.data.card import benchmark_label

    return re.sub(r"[^A-Za-z0-9_.-]", "-", f"vtrlab-{benchmark_label(benchmark)}-{backbone}")


@dataclass(frozen=True)
class Registration:
    model: str
    version: str
    alias: str  # champion | challenger
    objective: float
    previous_champion: float | None
    created: bool  # False: the run had been registered before (a resumed sweep)


def recorded_value(version: VersionRecord, metric: str) -> float | None:
    """The `metric.<metric>` tag a version carries, as a number."""
    try:
        return float(version.tags[f"metric.{metric}"])
    except (KeyError, ValueError):
        return None


def champion_version(tracker: Tracker, model: str) -> VersionRecord | None:
    """The version holding `champion`, or None (also when the model does not exist)."""
    from vtrlab.errors import NotFoundError

    try:
        return tracker.version_by_alias(model, CHAMPION)
    except NotFoundError:
        return None


def _best(versions: list[VersionRecord], metric: str, mode: str, current: str | None) -> VersionRecord | None:
    scored = [(value, v) for v in versions if (value := recorded_value(v, metric)) is not None]
    if not scored:
        return None
    sign = 1.0 if mode == "max" else -1.0
    top = max(sign * value for value, _ in scored)
    leaders = [v for value, v in scored if sign * value == top]
    for v in leaders:  # a tie keeps the champion in place
        if v.version == current:
            return v
    return leaders[0]  # else the oldest of the best


def settle_champion(tracker: Tracker, model: str, metric: str, mode: str) -> VersionRecord | None:
    """Point `champion` at the best version of `model` on `metric` (set, re-read, correct until stable)."""
    for _ in range(SETTLE_ROUNDS):
        current = tracker.aliases(model).get(CHAMPION)
        best = _best(tracker.versions(model), metric, mode, current)
        if best is None or best.version == current:
            return best
        tracker.set_alias(model, CHAMPION, best.version)
    return best


def register_run(
    tracker: Tracker,
    model: str,
    run_id: str,
    source: str,
    metrics: dict[str, float],
    objective_metric: str,
    mode: str,
    tags: dict[str, str],
    model_id: str | None = None,
) -> Registration:
    """Register run `run_id`'s adapter at `source` (with `model_id`, an MLflow logged model's) as a version of
    `model` (once), settle the champion, and give the version `challenger` when it is not the champion."""
    tracker.ensure_registered_model(model, DESCRIPTION)
    previous = champion_version(tracker, model)
    previous_value = recorded_value(previous, objective_metric) if previous else None
    existing = tracker.versions(model, {TAG_RUN: run_id})
    created = not existing
    if existing:
        version = existing[0]
    else:
        value = float(metrics[objective_metric])
        version_tags = {
            **tags,
            TAG_RUN: run_id,
            "objective.metric": objective_metric,
            "objective.mode": mode,
            "objective.value": f"{value:.6f}",
            **{f"metric.{k}": f"{v:.4f}" for k, v in metrics.items() if isinstance(v, int | float)},
        }
        version = tracker.create_version(model, source=source, run_id=run_id, tags=version_tags, model_id=model_id)
    champion = settle_champion(tracker, model, objective_metric, mode)
    alias = CHAMPION if champion is not None and champion.version == version.version else CHALLENGER
    if alias == CHALLENGER:
        tracker.set_alias(model, CHALLENGER, version.version)
    value = recorded_value(tracker.version(model, version.version), objective_metric)
    return Registration(model, version.version, alias, float(value or 0.0), previous_value, created)


ADAPTER_MODEL = "adapter_pyfunc"  # each registered run's logged model (not `adapter`: MLflow lists a logged model
# named like a run folder among that folder's files, so `adapter/` would no longer verify)


def register_adapter(
    tracker: Tracker,
    model: str,
    run_id: str,
    metrics: dict[str, float],
    objective_metric: str,
    mode: str,
    tags: dict[str, str],
) -> Registration:
    """Register run `run_id`'s adapter the way MLflow users expect: its verified `adapter/` artifact logged as
    an MLflow pyfunc model of the run (`vtrlab.tracking.adapter_model`), and that logged model registered as a
    version of `model` (see `register_run`). An adapter that does not verify is an ArtifactError: nothing is
    logged or registered."""
    import tempfile

    from vtrlab.model.artifacts import read_adapter_config, verify_checksum

    existing = tracker.versions(model, {TAG_RUN: run_id}) if model in tracker.registered_models() else []
    if existing:
        return register_run(tracker, model, run_id, existing[0].source, metrics, objective_metric, mode, tags)
    with tempfile.TemporaryDirectory(prefix="vtrlab-register-") as tmp:
        local = tracker.download(run_id, "adapter", tmp)
        verify_checksum(local, read_adapter_config(local), origin=f"run {run_id} adapter/")
        model_uri, model_id = tracker.log_adapter_model(run_id, local, ADAPTER_MODEL)
    return register_run(tracker, model, run_id, model_uri, metrics, objective_metric, mode, tags, model_id=model_id)
