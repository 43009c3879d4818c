"""`vtrlab.load` from several processes at once into a fresh cache: the file lock lets one of them download the
version and the others reuse its copy (a real MLflow registry: SQLite store and file artifacts in a temporary
folder; a tiny backbone saved as a weights file, so each process rebuilds the very backbone)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
import torch
from mlflow.tracking import MlflowClient

from vtrlab.model.artifacts import EvaluationSettings, save_adapter
from vtrlab.model.backbone import load_backbone
from vtrlab.model.factory import create_model
from vtrlab.tracking.client import Tracker
from vtrlab.tracking.registry import register_run

pytestmark = pytest.mark.slow
LOADERS = 3
MODEL = "vtrlab-synthetic-vtr-tiny"

LOADER = """
import hashlib, importlib, json, sys, time
from pathlib import Path
from vtrlab.hub.load import load_pulled
pull = importlib.import_module("vtrlab.hub.pull")  # the module (vtrlab.hub.pull the attribute is the function)

downloads = []
real = pull._download
def counted(*args, **kwargs):  # the real download, counted
    downloads.append(1)
    return real(*args, **kwargs)
pull._download = counted

go = Path(sys.argv[1])
(go.parent / f"ready-{sys.argv[2]}").touch()
while not go.exists():
    time.sleep(0.01)
encoder, pulled = load_pulled(sys.argv[3])
state = encoder.state_dict()
digest = hashlib.sha256(b"".join(state[k].cpu().numpy().tobytes() for k in sorted(state))).hexdigest()
print(json.dumps({"downloads": len(downloads), "pulled_at": pulled.pulled_at, "sha": pulled.weights_sha256,
                  "version": pulled.version, "path": str(pulled.path), "state": digest}))
"""


@pytest.fixture
def registry(tmp_path) -> dict:
    """A registered bottleneck adapter of the tiny backbone (weights in a file) in a fresh SQLite store."""
    torch.manual_seed(7)
    clip, _ = load_backbone("vtr-tiny")
    weights = tmp_path / "vtr-tiny.pt"
    torch.save(clip.state_dict(), weights)
    clip, info = load_backbone("vtr-tiny", weights)
    encoder = create_model("bottleneck", knobs={"width": 8}, clip=clip, backbone_info=info)
    evaluation = EvaluationSettings(benchmark="synthetic", split="test_multi", num_frames=4, max_words=16, batch_size=8)
    save_adapter(encoder, tmp_path / "adapter", evaluation=evaluation)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("lock", artifact_location=(tmp_path / "artifacts").as_uri())
    run = client.create_run(experiment)
    client.log_artifacts(run.info.run_id, str(tmp_path / "adapter"), artifact_path="adapter")
    client.set_terminated(run.info.run_id)
    source = f"runs:/{run.info.run_id}/adapter"
    registration = register_run(Tracker(uri), MODEL, run.info.run_id, source, {"t2v_R1": 1.0}, "t2v_R1", "max", {})
    return {"uri": uri, "version": registration.version}


def test_loads_racing_into_a_fresh_cache_download_once_and_agree(registry, tmp_path):
    home = tmp_path / "home"
    env = {**os.environ, "MLFLOW_TRACKING_URI": registry["uri"], "VTRLAB_HOME": str(home)}
    go = tmp_path / "start" / "go"
    go.parent.mkdir()
    command = [sys.executable, "-c", LOADER, str(go)]
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True, "env": env}
    loaders = [subprocess.Popen([*command, str(i), f"{MODEL}@champion"], **pipes) for i in range(LOADERS)]
    try:
        deadline = time.monotonic() + 300
        while len(list(go.parent.glob("ready-*"))) < LOADERS:  # every process imported and waits: go at once
            ended = [p.communicate()[1][-3000:] for p in loaders if p.poll() is not None]
            assert time.monotonic() < deadline and not ended, f"a loader did not start: {ended}"
            time.sleep(0.05)
        go.touch()
        outputs = [p.communicate(timeout=600) for p in loaders]
    finally:
        for p in loaders:
            if p.poll() is None:
                p.kill()
    for p, (_, err) in zip(loaders, outputs, strict=True):
        assert p.returncode == 0, err[-3000:]
    results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    assert sum(r["downloads"] for r in results) == 1, results
    assert {r["version"] for r in results} == {registry["version"]}
    assert len({(r["pulled_at"], r["sha"], r["path"], r["state"]) for r in results}) == 1, results  # one copy
    cache = home / "models" / MODEL
    assert sorted(p.name for p in cache.iterdir()) == sorted(
        [f"v{registry['version']}", f".v{registry['version']}.lock"]
    )
