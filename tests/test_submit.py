"""`vtrlab submit` to a Ray head started by the test (`ray start --head` on 127.0.0.1), then `vtrlab jobs`."""

from __future__ import annotations

import os
import subprocess
import time

import pytest
import yaml
from mlflow.tracking import MlflowClient

from servers import run_vtrlab
from vtrlab.cluster import LocalRay

pytestmark = pytest.mark.slow


def vtrlab(args: list[str], env: dict[str, str], timeout: int = 300) -> subprocess.CompletedProcess:
    return run_vtrlab(args, env, timeout)


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    """A Ray head whose node environment is a cluster's: its own vtrlab home (`vtrlab submit` forwards no
    VTRLAB_HOME of the submitting machine)."""
    ray = LocalRay(num_cpus=2, env={"VTRLAB_HOME": str(tmp_path_factory.mktemp("head-home"))}).start()
    yield ray
    ray.stop()


def test_forwarded_settings_leave_out_loopback_endpoints_and_the_home():
    from vtrlab.jobs import forwarded_env

    laptop = {
        "MLFLOW_TRACKING_URI": "http://127.0.0.1:5000",
        "AWS_ENDPOINT_URL": "https://s3.eu-west-1.amazonaws.com",
        "VTRLAB_HOME": "/home/me/.vtrlab",
        "MLFLOW_TRACKING_PASSWORD": "secret",
        "AWS_MAX_ATTEMPTS": "7",
    }
    assert forwarded_env(laptop) == {"AWS_ENDPOINT_URL": "https://s3.eu-west-1.amazonaws.com", "AWS_MAX_ATTEMPTS": "7"}


def test_submit_runs_the_sweep_as_a_ray_job(head, synth_small, pretrained_backbone, tmp_path):
    spec = {
        "name": "submitted",
        "weights": pretrained_backbone,  # rebuildable by whoever pulls the champion
        "benchmarks": ["synthetic"],
        "data": {"synthetic": synth_small},
        "train": {"eval_batch_size": 64},
        "methods": {"zero-shot": {}},
        "register_best": True,
    }
    spec_path = tmp_path / "submitted.yaml"
    spec_path.write_text(yaml.safe_dump(spec))
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking, "VTRLAB_HOME": str(tmp_path / "home")}
    env.update(head.client_env())  # the head's token (Ray's token authentication is on)
    env.pop("RAY_ADDRESS", None)

    submitted = vtrlab(["submit", str(spec_path), "--address", head.dashboard_url], env)
    assert submitted.returncode == 0, submitted.stderr[-3000:]
    job_id = submitted.stdout.strip().splitlines()[-1]
    assert job_id

    deadline = time.monotonic() + 600
    status = ""
    while time.monotonic() < deadline:
        status = vtrlab(["jobs", "status", job_id, "--address", head.dashboard_url], env).stdout.strip()
        if status in ("SUCCEEDED", "FAILED", "STOPPED"):
            break
        time.sleep(3)
    logs = vtrlab(["jobs", "logs", job_id, "--address", head.dashboard_url], env).stdout
    assert status == "SUCCEEDED", logs[-4000:]
    assert "sweep submitted" in logs and "champion" in logs

    mlflow = MlflowClient(tracking)
    experiment = mlflow.get_experiment_by_name("sweep-submitted")
    assert experiment is not None and mlflow.search_runs([experiment.experiment_id])
    assert vtrlab(["jobs", "stop", job_id, "--address", head.dashboard_url], env).stdout.strip() == "already finished"


def test_unreachable_dashboard_is_named(tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text(yaml.safe_dump({"name": "x", "benchmarks": ["synthetic"], "methods": {"zero-shot": {}}}))
    result = vtrlab(["submit", str(spec), "--address", "http://127.0.0.1:9"], dict(os.environ))
    assert result.returncode == 2 and "http://127.0.0.1:9" in result.stderr
