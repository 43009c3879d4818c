"""The private local Ray dies with its driver, however the driver ends, and takes its temp dir along; another
Ray on the machine is unaffected (issue 12, "No orphaned Ray")."""

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
