"""Real servers the integration tests start and stop themselves (PostgreSQL, an MLflow tracking server, with
or without basic-auth), and the CLI as a user runs it."""

from __future__ import annotations

import contextlib
import glob
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
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


def wait_for(condition, timeout: float, what: str, process: subprocess.Popen | None = None, output=None):
    """Poll `condition` until it returns something truthy (returned); an AssertionError when `process` (a
    driver) ends first, with `output()` (default: its stdout) in the message, or when `timeout` s pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if process is not None and process.poll() is not None:
            said = output() if output is not None else process.stdout.read()
            raise AssertionError(f"the driver ended (exit {process.returncode}) before {what}: {said}")
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _pg_tool(name: str) -> str:
    """A PostgreSQL server program: on PATH, else Debian's /usr/lib/postgresql/<version>/bin."""
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None)
    if found is None:
        raise RuntimeError(f"PostgreSQL's {name} not found: install Debian's postgresql (`make test` does)")
    return found


class PostgresServer:
    """A throwaway PostgreSQL cluster: `initdb` into a fresh temp dir, `pg_ctl start` on 127.0.0.1 and a free
    port, password authentication (scram-sha-256) for `user`, unix socket in the same dir. PostgreSQL refuses
    to run as root: as root, the server runs as Debian's `postgres` system user (`runuser`)."""

    def __init__(self, user: str = "vtrlab"):
        self.user, self.password = user, secrets.token_hex(12)
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="vtrlab-pg-", dir="/tmp"))
        self.data = self.dir / "data"
        self._as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        self.started = False

    def uri(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/{database}"

    def _run(self, *command: str, timeout: float = 120) -> None:
        result = subprocess.run([*self._as, *command], capture_output=True, text=True, timeout=timeout, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"{Path(command[0]).name} failed: {(result.stdout + result.stderr)[-2000:]}")

    def start(self) -> PostgresServer:
        password_file = self.dir / "password"
        password_file.write_text(self.password)
        password_file.chmod(0o600)
        if self._as:
            shutil.chown(self.dir, "postgres")
            shutil.chown(password_file, "postgres")
        self._run(
            _pg_tool("initdb"), "-D", str(self.data), "-U", self.user, f"--pwfile={password_file}",
            "--auth=scram-sha-256", "-E", "UTF8", "--no-sync",
        )  # fmt: skip
        return self.serve()

    def serve(self) -> PostgresServer:
        """Start the server on the initialised data dir (again, after `halt`)."""
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.dir} -c fsync=off -c max_connections=200"
        self._run(_pg_tool("pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.dir / "log"), "-w", "start")
        self.started = True
        return self

    def halt(self) -> None:
        """Stop the server, keeping its data (`serve` starts it again)."""
        self._run(_pg_tool("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop", timeout=60)
        self.started = False

    def create_database(self, name: str) -> str:
        """Create database `name`; returns its SQLAlchemy URI."""
        import psycopg

        with psycopg.connect(self.uri(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.uri(name)

    def stop(self) -> None:
        if self.started:
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                self._run(_pg_tool("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop", timeout=60)
            self.started = False
        shutil.rmtree(self.dir, ignore_errors=True)


class MlflowServer:
    """`mlflow server` with artifacts proxied to `artifacts` (a local dir or s3://) and a SQLite backend, or the
    `backend` URI given (PostgreSQL). `admin_password` turns on `--app-name basic-auth`: the admin user is
    `admin` with that password, the auth database in `workdir`, no permission by default."""

    def __init__(
        self,
        workdir: Path,
        artifacts: str,
        env: dict[str, str] | None = None,
        backend: str | None = None,
        admin_password: str | None = None,
        workers: int = 1,
    ):
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.workdir = workdir
        self.artifacts = artifacts
        self.backend = backend or f"sqlite:///{workdir / 'mlflow.db'}"
        self.admin_password = admin_password
        self.workers = workers
        self.env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **(env or {})}
        for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"):
            self.env.pop(name, None)
        self.process: subprocess.Popen | None = None

    def _auth_config(self, database: str) -> Path:
        config = self.workdir / "basic_auth.ini"
        config.write_text(
            "[mlflow]\ndefault_permission = NO_PERMISSIONS\n"
            f"database_uri = {database}\nadmin_username = admin\n"
            "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
            "auth_cache_ttl_seconds = 60\n"  # else every request pays a PBKDF2 check (~0.3 s on 2 cores)
        )
        return config

    def start(self, timeout: float = 120, auth_database: str | None = None) -> MlflowServer:
        mlflow_bin = Path(sys.executable).with_name("mlflow")
        command = [
            str(mlflow_bin), "server", "--backend-store-uri", self.backend,
            "--artifacts-destination", self.artifacts, "--host", "127.0.0.1", "--port", str(self.port),
            "--workers", str(self.workers),
        ]  # fmt: skip
        env = dict(self.env)
        if self.admin_password is not None:
            command += ["--app-name", "basic-auth"]
            database = auth_database or f"sqlite:///{self.workdir / 'basic_auth.db'}"
            env["MLFLOW_AUTH_CONFIG_PATH"] = str(self._auth_config(database))
            env["MLFLOW_AUTH_ADMIN_PASSWORD"] = self.admin_password
            env["MLFLOW_FLASK_SERVER_SECRET_KEY"] = secrets.token_hex(16)
        self.log = open(self.workdir / "mlflow-server.log", "wb")  # noqa: SIM115
        self.process = subprocess.Popen(
            command, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            wait_for_http(self.uri + "/health", self.process, timeout, "mlflow server")
        except RuntimeError as err:
            self.stop()
            raise RuntimeError(f"{err}: {(self.workdir / 'mlflow-server.log').read_text()[-2000:]}") from None
        return self

    def create_user(self, username: str, password: str) -> None:
        """Create a basic-auth user (as the admin)."""
        import requests

        response = requests.post(
            f"{self.uri}/api/2.0/mlflow/users/create",
            json={"username": username, "password": password},
            auth=("admin", self.admin_password),
            timeout=30,
        )
        response.raise_for_status()

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
