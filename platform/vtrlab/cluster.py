"""Connecting to Ray: the cluster at `--address` or RAY_ADDRESS, else a private local Ray with the dashboard.

The local Ray is a `ray start --head --block` child process on loopback ports chosen here, with its own
temp dir, and RAY_ADDRESS set in its environment. That matters: Ray Train V2's helper actors find "their"
cluster by auto-detection, which fails ("Found multiple active Ray instances") as soon as a second Ray runs
on the machine, and the next trial then waits forever for workers. With RAY_ADDRESS inherited by every
worker there is nothing to detect. The child is stopped when this process exits.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from vtrlab.errors import ConfigError


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalRay:
    """A private single-node Ray (`ray start --head --block` with the dashboard) on loopback ports.

    Used by `connect()` when no cluster is given, and by the tests as "a Ray head started by the test".
    `stop()` ends exactly this Ray (its process group), never another one on the machine.
    """

    def __init__(self, num_cpus: int | None = None, env: dict[str, str] | None = None):
        self.port, self.dashboard_port = _free_port(), _free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.dashboard_url = f"http://127.0.0.1:{self.dashboard_port}"
        self.num_cpus = num_cpus
        self.extra_env = env or {}
        self.temp_dir = tempfile.mkdtemp(prefix="vtrlab-ray-", dir="/tmp")  # short: socket paths are limited
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 90.0) -> LocalRay:
        env = {
            **os.environ,
            **self.extra_env,
            "RAY_ADDRESS": self.address,
            "RAY_AUTH_MODE": os.environ.get("RAY_AUTH_MODE", "disabled"),
            # job entrypoints (`python jobs/sweep.py`) run with this Python, the one that has vtrlab's deps
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        }
        ray_bin = shutil.which("ray", path=str(Path(sys.executable).parent)) or "ray"
        command = [
            ray_bin, "start", "--head", "--block", f"--port={self.port}", "--node-ip-address=127.0.0.1",
            "--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={self.dashboard_port}",
            f"--temp-dir={self.temp_dir}", "--disable-usage-stats",
            # every fixed default port too: a second Ray on the machine (a user's, a test's) already holds
            # them, and a dashboard agent that cannot bind leaves the head with "No available agent" for jobs
            f"--dashboard-agent-listen-port={_free_port()}", f"--dashboard-agent-grpc-port={_free_port()}",
            f"--metrics-export-port={_free_port()}", f"--runtime-env-agent-port={_free_port()}",
            f"--ray-client-server-port={_free_port()}",
        ]  # fmt: skip
        if self.num_cpus is not None:
            command.append(f"--num-cpus={self.num_cpus}")
        self.log_path = Path(self.temp_dir) / "ray-start.log"
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ConfigError(f"local Ray failed to start; see {self.log_path}")
            try:
                with socket.create_connection(("127.0.0.1", self.dashboard_port), timeout=1):
                    return self
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise ConfigError(f"local Ray did not come up within {timeout:.0f} s; see {self.log_path}")

    def stop(self) -> None:
        if self.process is None:
            return
        try:  # `ray start --block` exits in ~2 s on SIGINT but waits ~30 s on SIGTERM
            os.killpg(self.process.pid, signal.SIGINT)
            self.process.wait(timeout=30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        self.process = None
        shutil.rmtree(self.temp_dir, ignore_errors=True)


_LOCAL: LocalRay | None = None


def start_local_ray(num_cpus: int | None = None) -> str:
    """Start this process's private local Ray; RAY_ADDRESS points at it until it stops (at exit)."""
    global _LOCAL
    _LOCAL = LocalRay(num_cpus).start()
    atexit.register(stop_local_ray)
    os.environ["RAY_ADDRESS"] = _LOCAL.address
    return _LOCAL.address


def stop_local_ray() -> None:
    """Stop the private local Ray started by this process, if any."""
    global _LOCAL
    if _LOCAL is None:
        return
    import ray

    if ray.is_initialized():
        ray.shutdown()
    if os.environ.get("RAY_ADDRESS") == _LOCAL.address:
        os.environ.pop("RAY_ADDRESS")
    _LOCAL.stop()
    _LOCAL = None


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail fast, naming the address, when nothing listens at host:port (ray.init would retry for minutes)."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not port.isdigit():
        return
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout):
            pass
    except OSError as err:
        raise ConfigError(f"Ray at {address} is not reachable ({err.strerror or err}); is the cluster up?") from None


def connect(address: str | None = None, num_cpus: int | None = None, log_to_driver: bool = True) -> str:
    """Initialise Ray once per process: `address`, else RAY_ADDRESS, else a private local Ray.

    `log_to_driver=False` keeps the workers' logs in Ray's log files (Tune's progress table still shows)."""
    import ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    if ray.is_initialized():
        return ray.get_runtime_context().gcs_address
    address = address or os.environ.get("RAY_ADDRESS")
    description = f"Ray cluster at {address}"
    if not address:
        address = start_local_ray(num_cpus)
        description = f"local Ray at {address} (started here, stopped on exit)"
    else:
        _check_reachable(address)
    try:
        ray.init(address=address, logging_level="WARNING", log_to_driver=log_to_driver)
    except (ConnectionError, TimeoutError, RuntimeError, ValueError) as err:
        raise ConfigError(f"cannot connect to Ray at {address}: {err}") from None
    return description
