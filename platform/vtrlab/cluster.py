"""Connecting to Ray: the cluster at `--address` or RAY_ADDRESS, else a private local Ray with the dashboard.

The local Ray is a `ray start --head --block` child process on loopback ports chosen here, with its own
temp dir, and RAY_ADDRESS set in its environment. That matters: Ray Train V2's helper actors find "their"
cluster by auto-detection, which fails ("Found multiple active Ray instances") as soon as a second Ray runs
on the machine, and the next trial then waits forever for workers. With RAY_ADDRESS inherited by every
worker there is nothing to detect. The child is stopped when this process exits.
"""

from __future__ import annotations

import atexit
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

_LOCAL: subprocess.Popen | None = None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_local_ray(num_cpus: int | None = None, timeout: float = 90.0) -> str:
    """Start a private single-node Ray (with dashboard) and return its GCS address."""
    global _LOCAL
    port, dashboard_port = _free_port(), _free_port()
    address = f"127.0.0.1:{port}"
    temp_dir = tempfile.mkdtemp(prefix="vtrlab-ray-", dir="/tmp")  # short: Ray's socket paths are length-limited
    env = {**os.environ, "RAY_ADDRESS": address, "RAY_AUTH_MODE": os.environ.get("RAY_AUTH_MODE", "disabled")}
    ray_bin = shutil.which("ray", path=str(Path(sys.executable).parent)) or "ray"
    command = [
        ray_bin, "start", "--head", "--block", f"--port={port}", "--node-ip-address=127.0.0.1",
        "--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard_port}",
        f"--temp-dir={temp_dir}", "--disable-usage-stats",
    ]
    if num_cpus is not None:
        command.append(f"--num-cpus={num_cpus}")
    log = open(Path(temp_dir) / "ray-start.log", "wb")  # noqa: SIM115 (kept open for the child's lifetime)
    _LOCAL = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    atexit.register(stop_local_ray)
    os.environ["RAY_ADDRESS"] = address
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _LOCAL.poll() is not None:
            raise ConfigError(f"local Ray failed to start; see {log.name}")
        try:
            with socket.create_connection(("127.0.0.1", dashboard_port), timeout=1):
                return address
        except OSError:
            time.sleep(0.5)
    stop_local_ray()
    raise ConfigError(f"local Ray did not come up within {timeout:.0f} s; see {log.name}")


def stop_local_ray() -> None:
    """Stop the private local Ray started by this process, if any."""
    global _LOCAL
    if _LOCAL is None:
        return
    import ray

    if ray.is_initialized():
        ray.shutdown()
    try:
        os.killpg(_LOCAL.pid, signal.SIGTERM)
        _LOCAL.wait(timeout=30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(_LOCAL.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    _LOCAL = None
    if os.environ.get("RAY_ADDRESS", "").startswith("127.0.0.1:"):
        os.environ.pop("RAY_ADDRESS", None)


def connect(address: str | None = None, num_cpus: int | None = None) -> str:
    """Initialise Ray once per process: `address`, else RAY_ADDRESS, else a private local Ray."""
    import ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    if ray.is_initialized():
        return ray.get_runtime_context().gcs_address
    address = address or os.environ.get("RAY_ADDRESS")
    description = f"Ray cluster at {address}"
    if not address:
        address = start_local_ray(num_cpus)
        description = f"local Ray at {address} (started here, stopped on exit)"
    try:
        ray.init(address=address, logging_level="WARNING")
    except (ConnectionError, TimeoutError, RuntimeError, ValueError) as err:
        raise ConfigError(f"cannot connect to Ray at {address}: {err}") from None
    return description
