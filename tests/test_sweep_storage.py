"""State that outlives the head: a sweep with `--storage s3://...` keeps its ledger, Tune's experiment and the
trials' checkpoints in S3 (moto's server on 127.0.0.1), not on the machine that runs it. The driver is
SIGKILLed in the middle of the second trial, every local vtrlab and Ray folder is deleted (as a lost head
takes them), and `--resume` with the same storage finishes the sweep from S3: the finished trial is not run
again, the interrupted one continues in its own run, each epoch is logged once, one registry version.

Real parts: `vtrlab sweep` as a user runs it (its private local Ray), an MLflow tracking server on 127.0.0.1
(it is not the head's to lose), the small synthetic benchmark and the pretrained tiny backbone."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from servers import MlflowServer, run_vtrlab, wait_for
from vtrlab.tracking.client import Tracker
from vtrlab.tracking.records import RunState

pytestmark = pytest.mark.slow
NAME = "durable"
EXPERIMENT = f"sweep-{NAME}"
MODEL = "vtrlab-synthetic-vtr-tiny"


def trial_runs(tracker: Tracker) -> dict[str, list]:
    """{method: its trial runs} of the sweep's experiment."""
    found = tracker.experiment(EXPERIMENT)
    runs = tracker.search_runs([found.experiment_id], "tags.`vtrlab.kind` = 'trial'") if found else []
    by_method: dict[str, list] = {}
    for run in runs:
        by_method.setdefault(run.tags["method"], []).append(run)
    return by_method


def epochs_of(tracker: Tracker, run_id: str) -> list[int]:
    return [step for step, _ in tracker.metric_history(run_id, "rsum")]


def s3_keys(endpoint: str, url: str) -> list[str]:
    import boto3

    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    pages = (
        boto3.client("s3", endpoint_url=endpoint)
        .get_paginator("list_objects_v2")
        .paginate(Bucket=bucket, Prefix=prefix)
    )
    return [obj["Key"] for page in pages for obj in page.get("Contents", [])]


def private_ray_dir(driver_pid: int) -> tuple[int, Path] | None:
    """(pid, temp dir) of the driver's private Ray watchdog (`vtrlab.ray_watchdog`, its child process)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            args = (stat.parent / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if int(fields[1]) == driver_pid and any(a.endswith(b"ray_watchdog.py") for a in args):
            index = next(i for i, a in enumerate(args) if a.endswith(b"ray_watchdog.py"))
            return int(stat.parent.name), Path(args[index + 2].decode())
    return None


@pytest.fixture
def world(tmp_path, s3_endpoint, s3_bucket, synth_small, pretrained_backbone):
    (tmp_path / "mlflow").mkdir()
    server = MlflowServer(tmp_path / "mlflow", str(tmp_path / "mlflow" / "artifacts")).start()
    home, user = tmp_path / "vtrlab-home", tmp_path / "user-home"
    env = {**os.environ, "MLFLOW_TRACKING_URI": server.uri, "VTRLAB_HOME": str(home), "HOME": str(user)}
    for name in ("RAY_ADDRESS", "VTRLAB_TEST_FAULT", "VTRLAB_TEST_FAIL_AT_EPOCH"):
        env.pop(name, None)
    spec = {
        "name": NAME,
        "backbone": "vtr-tiny",
        "weights": pretrained_backbone,
        "benchmarks": ["synthetic"],
        "data": {"synthetic": synth_small},
        "train": {"epochs": 2, "batch_size": 32, "epoch_batches": 8, "eval_batch_size": 64, "workers": 1},
        "methods": {"zero-shot": {}, "bottleneck": {"knobs": {"width": 16}, "train": {"lr": 2e-3}}},
        "budget": {"trials": 1, "max_concurrent": 1, "trial_retries": 0},
    }
    path = tmp_path / f"{NAME}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))  # zero-shot first, then bottleneck
    yield {"env": env, "spec": path, "home": home, "user": user, "uri": server.uri, "storage": f"{s3_bucket}/state"}
    server.stop()


def test_a_sweep_on_s3_storage_resumes_after_its_head_and_local_state_are_gone(world, s3_endpoint):
    storage, tracker = world["storage"], Tracker(world["uri"])
    command = [sys.executable, "-m", "vtrlab.cli", "sweep", str(world["spec"]), "--storage", storage]
    driver = subprocess.Popen(command, env=world["env"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def bottleneck_mid_run_and_snapshotted() -> bool:  # its first epoch logged, Tune's state in S3
        runs = trial_runs(tracker).get("bottleneck", [])
        snapshotted = any("synthetic__bottleneck/tune/experiment_state" in k for k in s3_keys(s3_endpoint, storage))
        return len(runs) == 1 and epochs_of(tracker, runs[0].run_id) == [0] and snapshotted

    try:
        watchdog, ray_dir = wait_for(lambda: private_ray_dir(driver.pid), 300, "the private Ray", driver)
        wait_for(bottleneck_mid_run_and_snapshotted, 900, "the second trial's first epoch", driver)
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=60)
    finally:
        if driver.poll() is None:
            driver.kill()
    before = trial_runs(tracker)
    assert [r.status for r in before["zero-shot"]] == [RunState.FINISHED]
    assert [r.status for r in before["bottleneck"]] == [RunState.RUNNING]  # killed mid-trial
    keys = s3_keys(s3_endpoint, storage)
    assert any(k.endswith("synthetic__zero-shot/done.json") for k in keys)
    assert any("synthetic__bottleneck/train/" in k and "/checkpoint_" in k for k in keys), keys

    # the head is gone, and everything it held locally with it
    deadline = time.monotonic() + 120
    while Path(f"/proc/{watchdog}").exists() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not (world["home"] / "sweeps").exists()  # the sweep's state never was local
    for local in (ray_dir, world["home"], world["user"]):  # Ray's session, VTRLAB_HOME, ~ (ray_results)
        shutil.rmtree(local, ignore_errors=True)
        assert not local.exists()

    resumed = run_vtrlab(["sweep", str(world["spec"]), "--storage", storage, "--resume"], world["env"], timeout=1500)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-5000:]
    said = " ".join(resumed.stderr.split())
    assert f"synthetic / bottleneck: resuming Tune's experiment at {storage}/sweeps/{NAME}/" in said
    assert "synthetic / zero-shot" not in said  # finished: not run again
    after = trial_runs(tracker)
    assert [r.run_id for r in after["zero-shot"]] == [before["zero-shot"][0].run_id]
    assert [r.run_id for r in after["bottleneck"]] == [before["bottleneck"][0].run_id]  # continued, not replaced
    for runs in after.values():
        assert runs[0].status == RunState.FINISHED, runs[0]
    assert epochs_of(tracker, after["bottleneck"][0].run_id) == [0, 1]  # each epoch once
    assert epochs_of(tracker, after["zero-shot"][0].run_id) == [0]
    assert len(tracker.versions(MODEL, {"sweep": NAME})) == 1
