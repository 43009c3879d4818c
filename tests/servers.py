"""Real servers the integration tests start and stop themselves (an MLflow tracking server), and the CLI
as a user runs it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_http(url: str, process: subprocess.Popen, timeout: float, what: str) -> None:
    """Poll `url` until it answers; RuntimeError naming `what` if `process` exits or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except OSError:
            if process.poll() is not None:
                raise RuntimeError(f"{what} exited with {process.returncode}") from None
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not answer {url} within {timeout:g} s") from None
            time.sleep(0.2)


class MlflowServer:
    """`mlflow server` with a SQLite backend and artifacts proxied to `artifacts` (a local dir or s3://)."""

    def __init__(self, workdir: Path, artifacts: str, env: dict[str, str] | None = None):
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.workdir = workdir
        self.artifacts = artifacts
        self.env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **(env or {})}
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 90) -> MlflowServer:
        mlflow_bin = Path(sys.executable).with_name("mlflow")
        command = [
            str(mlflow_bin), "server", "--backend-store-uri", f"sqlite:///{self.workdir / 'mlflow.db'}",
            "--artifacts-destination", self.artifacts, "--host", "127.0.0.1", "--port", str(self.port),
            "--workers", "1",
        ]  # fmt: skip
        self.log = open(self.workdir / "mlflow-server.log", "wb")  # noqa: SIM115
        self.process = subprocess.Popen(
            command, env=self.env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            wait_for_http(self.uri + "/health", self.process, timeout, "mlflow server")
        except RuntimeError as err:
            self.stop()
            raise RuntimeError(f"{err}: {(self.workdir / 'mlflow-server.log').read_text()[-2000:]}") from None
        return self

    def stop(self) -> None:
        if self.process is None:
            return
        os.killpg(self.process.pid, 15)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, 9)
        self.process = None
        self.log.close()


def run_vtrlab(args: list[str], env: dict[str, str], timeout: int = 1200) -> subprocess.CompletedProcess:
    """`python -m vtrlab.cli ARGS` in a subprocess with `env`, output captured."""
    return subprocess.run(
        [sys.executable, "-m", "vtrlab.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
