"""`vtrlab train`: one Ray Train run, tracked as an MLflow run with its adapter artifact."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

from vtrlab.config import TrainSpec
from vtrlab.model.artifacts import CONFIG_NAME, WEIGHTS_NAME
from vtrlab.paths import vtrlab_home
from vtrlab.tracking.runs import TAG_KIND, client, find_or_create_run, flatten_params, log_params_once
from vtrlab.tracking.store import check_tracking_server, tracking_uri


def run_tags(spec: TrainSpec, kind: str, sweep: str | None = None) -> dict[str, str]:
    """The tags every run carries, so the MLflow UI compares across methods and sweeps."""
    tags = {TAG_KIND: kind, "method": spec.method, "benchmark": spec.benchmark, "backbone": spec.backbone}
    if spec.method == "rap":
        tags["rap.selection"] = str(spec.knobs.get("selection", "query-agnostic"))
    if sweep:
        tags["sweep"] = sweep
    return tags


def run_params(spec: TrainSpec) -> dict[str, str]:
    """Every knob (`knob.<name>`, defaults included) and every training field as MLflow params."""
    from vtrlab.model.methods import parse_knobs

    knobs = parse_knobs(spec.method, spec.knobs).model_dump()
    fields = spec.model_dump(exclude={"knobs"})
    return {**flatten_params(fields), **flatten_params(knobs, "knob.")}


def log_final_artifact(mlflow, run_id: str, checkpoint) -> None:
    """Log the last checkpoint's adapter (config + safetensors, not the optimizer) as `adapter/`."""
    if checkpoint is None or mlflow.list_artifacts(run_id, "adapter"):
        return  # nothing to log, or logged already (the adapter is logged once per run)
    with checkpoint.as_directory() as directory, tempfile.TemporaryDirectory() as staging:
        for name in (CONFIG_NAME, WEIGHTS_NAME):
            shutil.copy(Path(directory) / name, Path(staging) / name)
        mlflow.log_artifacts(run_id, staging, artifact_path="adapter")


def train(
    spec: TrainSpec, experiment: str = "vtrlab-train", address: str | None = None, storage: str | None = None
) -> dict[str, Any]:
    """Run `spec` on Ray (local or `address`), tracked in MLflow; returns the final metrics and run id.

    Checkpoints go to `storage` (e.g. s3://bucket/prefix, through Ray's pyarrow filesystems), else under
    $VTRLAB_HOME/ray_results."""
    from vtrlab.cluster import connect
    from vtrlab.train.runner import make_trainer

    spec = spec.resolved()
    uri = tracking_uri()
    check_tracking_server(uri)
    connect(address)
    mlflow = client(uri)
    name = f"{spec.benchmark}-{spec.method}-{uuid.uuid4().hex[:8]}"
    run_id, _ = find_or_create_run(mlflow, experiment, key=name, run_name=name, tags=run_tags(spec, "train"))
    log_params_once(mlflow, run_id, run_params(spec))
    trainer = make_trainer(
        spec,
        name=name,
        storage_path=storage or str(vtrlab_home() / "ray_results"),
        tracking={"uri": uri, "run_id": run_id, "marker_dir": str(vtrlab_home() / "ray_results" / name)},
    )
    try:
        result = trainer.fit()
    except Exception:
        mlflow.set_terminated(run_id, status="FAILED")
        raise
    log_final_artifact(mlflow, run_id, result.checkpoint)
    mlflow.set_terminated(run_id, status="FINISHED")
    return {"run_id": run_id, "experiment": experiment, "metrics": result.metrics or {}}
