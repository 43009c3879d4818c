"""One Ray Train run inside a Ray Tune trial, tracked as an MLflow child run (what sweeps and regressions
share), and the checks that a trial fits the cluster and its data is readable before anything starts."""

from __future__ import annotations

import time
from collections.abc import Mapping

from vtrlab.config import TrainSpec
from vtrlab.errors import ConfigError


def fit_tracked(
    train: TrainSpec,
    *,
    tracking_uri: str,
    experiment: str,
    key: str,
    run_name: str,
    tags: Mapping[str, str],
    parent_run_id: str,
    trainer_name: str,
    storage_path: str,
    marker_dir: str,
    started_at: float | None = None,
) -> str:
    """Find or create the run keyed `key` (a restarted trial logs into the same run), log the spec's params,
    fit a TorchTrainer that reports every epoch to Tune, log the adapter and close the run; returns its id.

    Call it from a Tune function: `TuneReportCallback` forwards Ray Train's reports to the trial."""
    from ray.tune.integration.ray_train import TuneReportCallback

    from vtrlab.tracking.runs import client, find_or_create_run, log_params_once
    from vtrlab.train.driver import log_final_artifact, run_params
    from vtrlab.train.runner import make_trainer

    started_at = time.time() if started_at is None else started_at
    mlflow = client(tracking_uri)
    run_id, _ = find_or_create_run(
        mlflow, experiment, key=key, run_name=run_name, tags=dict(tags), parent_run_id=parent_run_id
    )
    log_params_once(mlflow, run_id, run_params(train))
    trainer = make_trainer(
        train,
        name=trainer_name,
        storage_path=storage_path,
        tracking={"uri": tracking_uri, "run_id": run_id, "marker_dir": marker_dir, "started_at": started_at},
        callbacks=[TuneReportCallback()],
    )
    result = trainer.fit()
    log_final_artifact(mlflow, run_id, result.checkpoint)
    mlflow.set_terminated(run_id, status="FINISHED")
    return run_id


def trial_needs(train: TrainSpec, cpus_per_trial: float) -> tuple[float, float]:
    """(CPUs, GPUs) one trial holds: its Train workers plus the Tune function that drives them."""
    return train.workers * train.cpus_per_worker + cpus_per_trial, train.workers * train.gpus_per_worker


def check_cluster_fits(cpus: float, gpus: float, source: str, cpu_keys: str, gpu_keys: str) -> None:
    """Refuse a trial that cannot fit the connected Ray cluster, naming the keys that set its size."""
    import ray

    resources = ray.cluster_resources()
    if cpus > resources.get("CPU", 0):
        raise ConfigError(
            f"{source}: one trial needs {cpus:g} CPUs ({cpu_keys}) but the cluster has {resources.get('CPU', 0):g}"
        )
    if gpus > resources.get("GPU", 0):
        raise ConfigError(
            f"{source}: one trial needs {gpus:g} GPUs ({gpu_keys}) but the cluster has {resources.get('GPU', 0):g}"
        )


def check_data_readable(url: str, benchmark: str, source: str) -> dict:
    """The manifest of `benchmark`'s shards at `url`; a ConfigError naming the file and the URL if unreadable."""
    from vtrlab.data import read_manifest

    try:
        return read_manifest(url)
    except Exception as err:
        raise ConfigError(
            f"{source}: data for {benchmark} at {url} is not readable ({err}); build it with "
            f"`vtrlab data build` or `vtrlab data synth`"
        ) from None
