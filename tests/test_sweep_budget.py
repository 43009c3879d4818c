"""A budget the cluster cannot hold stops before any trial starts, naming the keys and the file."""

from __future__ import annotations

import os

import pytest
import yaml

from servers import run_vtrlab

pytestmark = pytest.mark.slow


def test_budget_larger_than_the_cluster_is_refused(synth_small, tmp_path):
    spec = {
        "name": "too-big",
        "benchmarks": ["synthetic"],
        "data": {"synthetic": synth_small},
        "train": {"workers": 4, "cpus_per_worker": 2},
        "methods": {"zero-shot": {}},
    }
    path = tmp_path / "too-big.yaml"
    path.write_text(yaml.safe_dump(spec))
    env = {**os.environ, "VTRLAB_HOME": str(tmp_path / "home"), "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/m.db"}
    env.pop("RAY_ADDRESS", None)
    result = run_vtrlab(["sweep", str(path)], env, timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    message = " ".join(result.stderr.split())
    assert "too-big.yaml" in message and "needs 8.1 CPUs" in message and "train.workers" in message
    assert not (tmp_path / "home" / "sweeps").exists()  # a refused sweep leaves no state
