"""A sweep with real parts: shards on an S3 endpoint, a private local Ray, an MLflow tracking server with
artifacts on S3, Optuna + ASHA, a worker killed mid-trial, and the registry's champion."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import boto3
import pytest
import yaml
from mlflow.tracking import MlflowClient

from servers import MlflowServer, run_vtrlab

pytestmark = pytest.mark.slow

EPOCHS = 3


def vtrlab(args: list[str], env: dict[str, str], timeout: int = 1200) -> subprocess.CompletedProcess:
    return run_vtrlab(args, env, timeout)


@pytest.fixture(scope="module")
def sweep_world(s3_endpoint, pretrained_backbone, tmp_path_factory):
    """Data on S3, an MLflow server (artifacts on S3), and the environment a user would have."""
    from vtrlab.data.synth import synth

    root = tmp_path_factory.mktemp("sweep")
    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    for bucket in ("e2e-data", "e2e-mlflow"):
        s3.create_bucket(Bucket=bucket)
    synth("s3://e2e-data/synthetic", size="small", seed=0)
    server = MlflowServer(root, "s3://e2e-mlflow/artifacts", env={"MLFLOW_S3_ENDPOINT_URL": s3_endpoint}).start()
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": server.uri,
        "VTRLAB_HOME": str(root / "home"),
        "VTRLAB_TEST_FAULT": "exit@1",  # one worker process dies mid-epoch 1, once per trial
    }
    env.pop("RAY_ADDRESS", None)
    spec = {
        "name": "e2e",
        "backbone": "vtr-tiny",
        "weights": pretrained_backbone,  # a backbone others can rebuild: the champion is registrable
        "benchmarks": ["synthetic"],
        "data": {"synthetic": "s3://e2e-data/synthetic"},
        "train": {"epochs": EPOCHS, "batch_size": 32, "epoch_batches": 3, "eval_batch_size": 64, "workers": 1},
        "methods": {
            "zero-shot": {},
            "mv-adapter": {
                "knobs": {"width": 16},
                "search": {"lr": {"float": [1e-5, 0.5], "log": True}, "calibration_shrink": {"choice": [2, 4]}},
            },
        },
        "budget": {"trials": 4, "max_concurrent": 1, "grace_period": 1, "reduction_factor": 4},
        # mean rank: fine-grained enough that trials rarely tie at the first rung (R@1 on 64 clips often does)
        "objective": {"metric": "t2v_MnR", "mode": "min"},
    }
    spec_path = root / "e2e.yaml"
    spec_path.write_text(yaml.safe_dump(spec))
    result = vtrlab(["sweep", str(spec_path)], env)
    yield {"env": env, "spec": spec_path, "result": result, "server": server, "s3": s3, "home": root / "home"}
    server.stop()


def test_sweep_runs_and_prints_the_champion(sweep_world):
    result = sweep_world["result"]
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    assert "champion" in result.stdout


def test_every_trial_is_a_child_run_with_comparable_names(sweep_world):
    mlflow = MlflowClient(sweep_world["server"].uri)
    experiment = mlflow.get_experiment_by_name("sweep-e2e")
    runs = mlflow.search_runs([experiment.experiment_id])
    parents = [r for r in runs if r.data.tags.get("vtrlab.kind") == "sweep"]
    children = [r for r in runs if r.data.tags.get("vtrlab.kind") == "trial"]
    assert len(parents) == 1 and len(children) == 5  # zero-shot + 4 MV-Adapter trials
    parent = parents[0]
    for key in ("git_commit", "spec_fingerprint", "data_version.synthetic", "version.torch", "version.ray"):
        assert key in parent.data.params
    assert [a.path for a in mlflow.list_artifacts(parent.info.run_id, "spec")] == ["spec/e2e.yaml"]
    for child in children:
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert {"method", "benchmark", "backbone", "sweep"} <= set(child.data.tags)
        for metric in ("t2v_R1", "t2v_MdR", "v2t_MnR", "rsum", "trainable_pct"):
            assert metric in child.data.metrics, (child.info.run_name, metric)
        if child.data.tags["method"] == "mv-adapter":
            assert "knob.width" in child.data.params and "lr" in child.data.params


def test_asha_stops_at_least_one_trial_and_finished_trials_have_every_epoch_once(sweep_world):
    mlflow = MlflowClient(sweep_world["server"].uri)
    experiment = mlflow.get_experiment_by_name("sweep-e2e")
    children = mlflow.search_runs([experiment.experiment_id], filter_string="tags.`vtrlab.kind` = 'trial'")
    stopped = [r for r in children if "asha_stopped" in r.data.tags]
    assert stopped, "ASHA stopped no trial"
    assert all(r.info.status == "KILLED" for r in stopped)
    for run in children:
        steps = [m.step for m in mlflow.get_metric_history(run.info.run_id, "rsum")]
        assert len(steps) == len(set(steps)), f"duplicate epochs in {run.info.run_name}: {steps}"
        if run.data.tags["method"] == "mv-adapter" and "asha_stopped" not in run.data.tags:
            assert sorted(steps) == list(range(EPOCHS)), (run.info.run_name, run.info.status, run.data.tags, steps)
            assert run.info.status == "FINISHED"
            assert {a.path for a in mlflow.list_artifacts(run.info.run_id, "adapter")} == {
                "adapter/adapter_config.json",
                "adapter/adapter_model.safetensors",
            }


def test_a_worker_was_killed_and_its_trial_resumed_in_the_same_run(sweep_world):
    mlflow = MlflowClient(sweep_world["server"].uri)
    experiment = mlflow.get_experiment_by_name("sweep-e2e")
    trials = mlflow.search_runs([experiment.experiment_id], filter_string="tags.`vtrlab.kind` = 'trial'")
    faults = Path(tempfile.gettempdir()) / "vtrlab-faults"
    crashed = [r for r in trials if (faults / f"{r.info.run_id}-exit-1").exists()]
    assert crashed, "the injected worker failure did not happen"
    # every run has each epoch once (above), so the restarted workers continued from the checkpoint and
    # logged into the same run (one run per trial, none duplicated)
    names = [r.info.run_name for r in mlflow.search_runs([experiment.experiment_id])]
    assert len(names) == len(set(names))


def test_champion_is_registered_with_artifacts_on_s3(sweep_world):
    mlflow = MlflowClient(sweep_world["server"].uri)
    champion = mlflow.get_model_version_by_alias("vtrlab-synthetic-vtr-tiny", "champion")
    assert champion.tags["sweep"] == "e2e" and champion.tags["objective.metric"] == "t2v_MnR"
    keys = [o["Key"] for o in sweep_world["s3"].list_objects_v2(Bucket="e2e-mlflow").get("Contents", [])]
    assert any(key.endswith("adapter/adapter_model.safetensors") for key in keys)


def test_resume_keeps_finished_trials_and_adds_nothing(sweep_world):
    mlflow = MlflowClient(sweep_world["server"].uri)
    experiment = mlflow.get_experiment_by_name("sweep-e2e")
    before = mlflow.search_runs([experiment.experiment_id])
    parent = next(r for r in before if r.data.tags.get("vtrlab.kind") == "sweep")
    wall_before = parent.data.metrics["sweep_wall_seconds"]
    versions = len(mlflow.search_model_versions("name = 'vtrlab-synthetic-vtr-tiny'"))
    result = vtrlab(["sweep", str(sweep_world["spec"]), "--resume"], sweep_world["env"], timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(mlflow.search_runs([experiment.experiment_id])) == len(before)
    assert len(mlflow.search_model_versions("name = 'vtrlab-synthetic-vtr-tiny'")) == versions
    # the sweep's wall time adds the resume's own driver time to the first run's (never replaced by it)
    assert mlflow.get_run(parent.info.run_id).data.metrics["sweep_wall_seconds"] > wall_before


def test_unreachable_servers_are_named(sweep_world, tmp_path):
    env = {**sweep_world["env"], "MLFLOW_TRACKING_URI": "http://127.0.0.1:9"}
    result = vtrlab(["sweep", str(sweep_world["spec"])], env, timeout=120)
    assert result.returncode == 2 and "http://127.0.0.1:9" in result.stderr
    result = vtrlab(["sweep", str(sweep_world["spec"]), "--address", "127.0.0.1:9"], sweep_world["env"], timeout=120)
    assert result.returncode == 2 and "127.0.0.1:9" in result.stderr and "not reachable" in result.stderr
