"""`vtrlab train`: one tracked Ray Train run (the same path a sweep trial takes, without Ray Tune)."""

from __future__ import annotations

import uuid
from typing import Any

from vtrlab.config import TrainSpec
from vtrlab.data.card import benchmark_label
from vtrlab.errors import RunsFailedError, VtrlabError
from vtrlab.paths import vtrlab_home
from vtrlab.tracking.client import Tracker
from vtrlab.tracking.lifecycle import Heartbeat
from vtrlab.tracking.provenance import provenance_params
from vtrlab.tracking.store import check_tracking_server, tracking_uri
from vtrlab.train.preflight import (
    check_cluster_fits,
    check_data_readable,
    check_eval_gallery,
    check_storage_writable,
    trial_shape,
)
from vtrlab.train.tracked import RunIdentity, one_line, open_run, run_tags, run_tracked


def train(
    spec: TrainSpec, experiment: str = "vtrlab-train", address: str | None = None, storage: str | None = None
) -> dict[str, Any]:
    """Run `spec` on Ray (local or `address`), tracked in MLflow; returns the final metrics and run id.

    Checkpoints go to `storage` (e.g. s3://bucket/prefix, through Ray's pyarrow filesystems), else under
    $VTRLAB_HOME/ray_results. The run ends FINISHED, or FAILED with its error (RunsFailedError, exit 4;
    vtrlab's own bad-input errors come back as themselves)."""
    from vtrlab.cluster import connect
    from vtrlab.model.backbone import check_backbone

    spec = spec.resolved()
    check_backbone(spec.backbone, spec.weights, "vtrlab train")
    if storage:
        check_storage_writable(storage, "vtrlab train --storage")
    uri = tracking_uri()
    check_tracking_server(uri)
    manifest = check_data_readable(
        spec.data, spec.benchmark, "vtrlab train --data", [spec.train_split, spec.eval_split]
    )
    check_eval_gallery(manifest, spec.data, spec.eval_split, spec.allow_missing, "vtrlab train --data")
    connect(address)
    keys = {"CPU": "--workers x --cpus-per-worker", "GPU": "--workers x --gpus-per-worker"}
    check_cluster_fits(trial_shape(spec, 0.0), "vtrlab train", keys)
    name = f"{benchmark_label(spec.benchmark)}-{spec.method}-{uuid.uuid4().hex[:8]}"
    identity = RunIdentity(experiment, key=f"train/{name}", name=name, tags=run_tags(spec, "train"))
    tracker = Tracker(uri)
    run_id = open_run(tracker, identity).run_id  # `run_tracked` counts the attempt and logs the spec's params
    tracker.log_params(run_id, provenance_params("vtrlab train", "-", {spec.benchmark: manifest}))
    with Heartbeat(tracker, run_id):
        try:
            outcome = run_tracked(
                spec,
                identity,
                tracking_uri=uri,
                storage_path=storage or str(vtrlab_home() / "ray_results"),
                trainer_name=name,
            )
        except VtrlabError:
            raise
        except Exception as err:
            raise RunsFailedError(f"vtrlab train: run {run_id} failed: {one_line(err)}") from err
    return {"run_id": outcome.run_id, "experiment": experiment, "metrics": outcome.metrics}
