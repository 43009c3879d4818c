"""The private local Ray dies with its driver, however the driver ends, and takes its temp dir along; another
Ray on the machine is unaffected (issue 12, "No orphaned Ray"). On a three-node Ray on this machine, the
node running a training worker is killed mid-epoch: the run continues from its checkpoint on another node."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vtrlab.cluster import LocalRay
from vtrlab.ray_watchdog import marked_processes

pytestmark = pytest.mark.slow

# a driver as `vtrlab sweep` is one: connect() starts the private Ray; an actor gives it workers to orphan
DRIVER = """
import json, sys, time
import ray
from vtrlab import cluster
cluster.connect(num_cpus=1, log_to_driver=False)

@ray.remote(num_cpus=0)
class Worker:
    def pid(self):
        import os
        return os.getpid()

worker = Worker.remote()
local = cluster._LOCAL
print(json.dumps({"temp_dir": local.temp_dir, "watchdog": local.process.pid, "worker": ray.get(worker.pid.remote()),
                  "token_mode": oct(local.token_path.stat().st_mode & 0o777)}), flush=True)
time.sleep(600)
"""


def _start_driver() -> tuple[subprocess.Popen, dict]:
    proc = subprocess.Popen([sys.executable, "-c", DRIVER], stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert line, f"driver exited with {proc.wait()} before its Ray was up"
    return proc, json.loads(line)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/status").read_text().find("State:\tZ") < 0


def _wait_gone(info: dict, timeout: float = 60) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        gone = not marked_processes(info["temp_dir"]) and not _alive(info["watchdog"])
        if gone and not Path(info["temp_dir"]).exists():
            return time.monotonic() - started
        time.sleep(0.5)
    left = [(p.pid, p.name()) for p in marked_processes(info["temp_dir"])]
    raise AssertionError(f"Ray of the killed driver still there after {timeout} s: {left}, {info}")


def test_private_ray_dies_with_its_driver():
    survivor = LocalRay(num_cpus=1).start()  # a second driver's Ray on the same machine
    try:
        drivers = {sig: _start_driver() for sig in (signal.SIGKILL, signal.SIGTERM)}
        for sig, (driver, info) in drivers.items():
            assert info["token_mode"] == "0o600"
            assert _alive(info["worker"]) and marked_processes(info["temp_dir"])
            driver.send_signal(sig)
        for sig, (driver, info) in drivers.items():
            driver.wait(timeout=30)
            took = _wait_gone(info)
            print(f"{signal.Signals(sig).name}: the driver's Ray was gone {took:.1f} s after the signal")
            assert not _alive(info["worker"])
        # the other Ray still answers and still has its processes
        assert survivor.process.poll() is None and marked_processes(survivor.temp_dir)
        with socket.create_connection(("127.0.0.1", survivor.dashboard_port), timeout=5):
            pass
    finally:
        survivor.stop()
    assert not Path(survivor.temp_dir).exists() and not marked_processes(survivor.temp_dir)


# ---- a node lost mid-epoch -------------------------------------------------------------------------


class WorkerNode:
    """`ray start --address HEAD --block` as a second machine would run it: its own temp dir, loopback
    ports, the head's token, every process marked (VTRLAB_LOCAL_RAY) so `kill()` ends the whole node at once,
    as a lost machine ends."""

    def __init__(self, head: LocalRay, cpus: int):
        import tempfile

        from servers import free_port
        from vtrlab.ray_watchdog import MARK_ENV

        self.temp_dir = tempfile.mkdtemp(prefix="vtrlab-ray-", dir="/tmp")
        env = {k: v for k, v in os.environ.items() if k != "RAY_AUTH_TOKEN"}
        env.update({**head.client_env(), MARK_ENV: self.temp_dir})
        command = [
            str(Path(sys.executable).with_name("ray")), "start", f"--address={head.address}", "--block",
            "--node-ip-address=127.0.0.1", f"--temp-dir={self.temp_dir}", f"--num-cpus={cpus}",
            "--disable-usage-stats", f"--node-manager-port={free_port()}", f"--object-manager-port={free_port()}",
            f"--metrics-export-port={free_port()}", f"--dashboard-agent-listen-port={free_port()}",
            f"--dashboard-agent-grpc-port={free_port()}", f"--runtime-env-agent-port={free_port()}",
        ]  # fmt: skip
        self.log = Path(self.temp_dir) / "ray-start.log"
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def wait_started(self, timeout: float = 120) -> WorkerNode:
        deadline = time.monotonic() + timeout
        while "Ray runtime started" not in self.log.read_text(errors="replace"):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"worker node did not start: {self.log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.5)
        return self

    def runs(self, name: str) -> bool:
        """Whether a process of this node is the Ray actor `name` (its process title, `ray::NAME...`)."""
        import psutil

        for proc in marked_processes(self.temp_dir):
            try:
                if f"ray::{name}" in " ".join(proc.cmdline()):
                    return True
            except psutil.Error:
                continue
        return False

    def kill(self) -> None:
        """SIGKILL every process of the node (raylet, workers, agents), and remove its temp dir."""
        from vtrlab.ray_watchdog import stop_session

        stop_session(None, self.temp_dir)
        self.process.wait(timeout=30)


def test_a_node_lost_mid_epoch_continues_from_its_checkpoint_on_another_node(
    s3_bucket, synth_small, pretrained_backbone, tmp_path
):
    """A head with no CPU (the driver's node: `vtrlab train --address` and Ray Train's controller stay there)
    and two worker nodes of one CPU each. The node running the training worker is killed in the middle of
    epoch 1; Ray Train restarts the worker on the other node from the checkpoint in S3, in the same MLflow
    run: every epoch logged once, the run FINISHED after one attempt, epoch 1 started from the checkpoint."""
    import boto3

    from servers import MlflowServer, wait_for
    from vtrlab.tracking.client import Tracker
    from vtrlab.tracking.records import RunState

    server = MlflowServer(tmp_path, str(tmp_path / "artifacts")).start()
    head = LocalRay(num_cpus=0).start()
    nodes: list[WorkerNode] = []
    driver = None
    try:
        nodes = [WorkerNode(head, cpus=1) for _ in range(2)]
        for node in nodes:
            node.wait_started()
        env = {k: v for k, v in os.environ.items() if k != "RAY_AUTH_TOKEN"}
        env.update({**head.client_env(), "MLFLOW_TRACKING_URI": server.uri, "VTRLAB_HOME": str(tmp_path / "home")})
        env.pop("VTRLAB_TEST_FAULT", None)
        command = [
            sys.executable, "-m", "vtrlab.cli", "train", "--benchmark", "synthetic", "--method", "bottleneck",
            "--set", "width=16", "--data", synth_small, "--weights", pretrained_backbone, "--epochs", "3",
            "--batch-size", "32", "--epoch-batches", "8", "--eval-batch-size", "64", "--lr", "2e-3",
            "--address", head.address, "--storage", f"{s3_bucket}/checkpoints", "--experiment", "cl-node",
            "--json",
        ]  # fmt: skip
        output, errors = tmp_path / "driver.out", tmp_path / "driver.err"  # files: Ray's worker logs are long
        with open(output, "wb") as out, open(errors, "wb") as err:
            driver = subprocess.Popen(command, env=env, stdout=out, stderr=err)
        tracker = Tracker(server.uri)

        def first_epoch_checkpointed() -> str | None:
            """The run id once epoch 0 is in MLflow and Ray Train has recorded its checkpoint in S3."""
            experiment = tracker.experiment("cl-node")
            runs = tracker.search_runs([experiment.experiment_id]) if experiment else []
            if not runs or tracker.logged_epochs(runs[0].run_id) != {0}:
                return None
            bucket, _, prefix = runs[0].tags["vtrlab.checkpoints"].removeprefix("s3://").partition("/")
            snapshot = f"{prefix}/checkpoint_manager_snapshot.json"
            return runs[0].run_id if s3.list_objects_v2(Bucket=bucket, Prefix=snapshot).get("KeyCount") else None

        s3 = boto3.client("s3")
        run_id = wait_for(first_epoch_checkpointed, 300, "epoch 0's checkpoint", driver, lambda: tail(errors))
        (lost,) = [node for node in nodes if node.runs("RayTrainWorker")] or [None]  # in epoch 1 now
        assert lost is not None, "no node runs the training worker"
        (other,) = [node for node in nodes if node is not lost]
        assert any("TrainController" in " ".join(p.cmdline()) for p in marked_processes(head.temp_dir))
        lost.kill()
        moved = "the training worker on the other node"
        wait_for(lambda: other.runs("RayTrainWorker"), 180, moved, driver, lambda: tail(errors))
        driver.wait(timeout=300)
        assert driver.returncode == 0, errors.read_text(errors="replace")[-5000:]
        lines = output.read_text().splitlines()  # Ray's driver logs come first ("(raylet) Raylet is terminated")
        start = max(i for i, line in enumerate(lines) if line == "{")
        assert json.loads("\n".join(lines[start:]))["run_id"] == run_id
        experiment = tracker.experiment("cl-node")
        (run,) = tracker.search_runs([experiment.experiment_id])  # the same run, not a second one
        assert run.run_id == run_id and run.status == RunState.FINISHED, run
        assert run.tags["vtrlab.attempts"] == "1" and "error" not in run.tags
        assert run.tags["vtrlab.checkpoints"].startswith(f"{s3_bucket}/checkpoints/")
        assert [step for step, _ in tracker.metric_history(run_id, "rsum")] == [0, 1, 2]
        # `startup_seconds` is logged by the first epoch a worker group runs: 0, then the epoch it restored to
        restarts = [step for step, _ in tracker.metric_history(run_id, "startup_seconds")]
        assert restarts[0] == 0 and len(restarts) == 2 and restarts[1] >= 1, restarts
    finally:
        if driver is not None and driver.poll() is None:
            driver.kill()
        for node in nodes:
            node.kill()
        head.stop()
        server.stop()


def tail(log: Path) -> str:
    return log.read_text(errors="replace")[-5000:]
