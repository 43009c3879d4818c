"""A bad-input error met inside a Ray Train worker reaches the user as the driver's one line (issue 13): a shard
corrupted after the build, found by the worker's sha256 check, ends `vtrlab train` at once with exit 2 and that
error, without the worker's traceback that Ray would forward to the driver's stderr."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from servers import run_vtrlab


@pytest.mark.slow
def test_a_corrupt_shard_met_by_a_worker_is_one_line(synth_small, tmp_path):
    data = tmp_path / "synthetic"
    shutil.copytree(synth_small, data)
    manifest = json.loads((data / "manifest.json").read_text())
    shard = data / manifest["splits"]["train"]["shards"][0]["path"]
    body = bytearray(shard.read_bytes())
    body[len(body) // 2] ^= 0xFF
    shard.write_bytes(bytes(body))
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}", "VTRLAB_HOME": str(tmp_path)}
    env.pop("RAY_ADDRESS", None)
    args = ["train", "--benchmark", "synthetic", "--method", "bottleneck", "--data", str(data), "--epochs", "1"]
    result = run_vtrlab([*args, "--epoch-batches", "2", "--batch-size", "8"], env, timeout=600)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and str(shard) in errors[0] and "does not match the manifest" in errors[0]
