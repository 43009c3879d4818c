"""Connecting to Ray: the cluster at `--address` or RAY_ADDRESS, else a private local Ray with the dashboard.

The local Ray is a `ray start --head --block` child process on loopback ports chosen here, with its own
temp dir, and RAY_ADDRESS set in its environment. That matters: Ray Train V2's helper actors find "their"
cluster by auto-detection, which fails ("Found multiple active Ray instances") as soon as a second Ray runs
on the machine, and the next trial then waits forever for workers. With RAY_ADDRESS inherited by every
worker there is nothing to detect.

It never outlives its driver: a watchdog (`vtrlab.ray_watchdog`) holds the head and stops it, every process
of its session and its temp dir when this process closes the lifeline pipe or dies, SIGKILL included.

Authentication is Ray's token mode. The private Ray gets a token generated here, kept in its temp dir
(mode 0600) and passed the standard way: `RAY_AUTH_MODE=token` and `RAY_AUTH_TOKEN_PATH` in the head's
environment (every worker, job supervisor and job driver inherits them) and in this process's (ray.init,
JobSubmissionClient). For a cluster, Ray's own settings apply: `RAY_AUTH_TOKEN`, `RAY_AUTH_TOKEN_PATH` or
`~/.ray/auth_token`, with `RAY_AUTH_MODE=token` (set here when a token is configured and the mode is not).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from vtrlab import ray_watchdog
from vtrlab.errors import ConfigError
from vtrlab.storage import apply_retry_env

AUTH_ENV = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")
AUTH_HINT = "set RAY_AUTH_MODE=token and the cluster's token in RAY_AUTH_TOKEN_PATH (a file) or RAY_AUTH_TOKEN"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def refresh_ray_auth() -> None:
    """Make an already imported Ray see the RAY_AUTH_* variables now in os.environ (it caches them)."""
    if "ray._raylet" not in sys.modules:
        return
    from ray._raylet import AuthenticationTokenLoader, Config

    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


def enable_configured_token() -> None:
    """Turn on Ray's token mode when a token is configured (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or
    ~/.ray/auth_token) and RAY_AUTH_MODE is unset, as `ray start` does; an explicit mode is kept."""
    if "RAY_AUTH_MODE" in os.environ:
        return
    default = Path.home() / ".ray" / "auth_token"
    if os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH") or default.is_file():
        os.environ["RAY_AUTH_MODE"] = "token"
        refresh_ray_auth()


def _refusal_reason() -> str:
    from ray._raylet import AuthenticationMode, AuthenticationTokenLoader, get_authentication_mode

    if get_authentication_mode() != AuthenticationMode.TOKEN or not AuthenticationTokenLoader.instance().has_token():
        return "no token was sent"
    return "the token was rejected"


def auth_refusal(err: BaseException, where: str) -> ConfigError | None:
    """A one-line ConfigError naming `where` for Ray's AuthenticationError (or an HTTP 401/403), else None."""
    from ray.exceptions import AuthenticationError

    text = str(err)
    if isinstance(err, AuthenticationError) or "status code 401" in text or "status code 403" in text:
        return ConfigError(f"Ray at {where} refused the request: {_refusal_reason()} ({AUTH_HINT})")
    return None


def _check_auth(address: str) -> None:
    """Ask the GCS at `address` for nothing with this process's token: ray.init would only log a refusal
    and then fail with "Failed to connect"; this names it."""
    if address.startswith("ray://") or address == "auto":
        return
    from ray._raylet import GcsClient

    try:
        GcsClient(address=address).internal_kv_get(b"vtrlab-auth-check", None, timeout=10)
    except Exception as err:
        refusal = auth_refusal(err, address)
        if refusal is not None:
            raise refusal from None


class LocalRay:
    """A private single-node Ray (`ray start --head --block` with the dashboard) on loopback ports.

    Used by `connect()` when no cluster is given, and by the tests as "a Ray head started by the test".
    It uses token authentication with its own token (`token_path`, 0600, in its temp dir); `client_env()` is
    what another process needs to reach it. `stop()` ends exactly this Ray, never another one on the machine,
    and so does the death of the process that started it.
    """

    def __init__(self, num_cpus: int | None = None, env: dict[str, str] | None = None):
        self.port, self.dashboard_port = _free_port(), _free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.dashboard_url = f"http://127.0.0.1:{self.dashboard_port}"
        self.num_cpus = num_cpus
        self.extra_env = env or {}
        self.temp_dir = tempfile.mkdtemp(prefix="vtrlab-ray-", dir="/tmp")  # short: socket paths are limited
        self.token_path = Path(self.temp_dir) / "auth_token"
        self.log_path = Path(self.temp_dir) / "ray-start.log"
        self.process: subprocess.Popen | None = None  # the watchdog, parent of the head
        self._lifeline: int | None = None

    def client_env(self) -> dict[str, str]:
        """The environment a client of this Ray needs: its address and its token (by path)."""
        return {"RAY_ADDRESS": self.address, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(self.token_path)}

    def _write_token(self) -> None:
        fd = os.open(self.token_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))

    def start(self, timeout: float = 90.0) -> LocalRay:
        self._write_token()
        env = {k: v for k, v in os.environ.items() if k != "RAY_AUTH_TOKEN"}  # ours, by path, not the user's
        apply_retry_env(env)
        for name, value in LOCAL_RAY_DEFAULTS.items():
            env.setdefault(name, value)
        env.update(
            {
                **self.extra_env,
                **self.client_env(),
                ray_watchdog.MARK_ENV: self.temp_dir,
                # job entrypoints (`python jobs/sweep.py`) run with this Python, the one that has vtrlab's deps
                "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
            }
        )
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
        read_end, self._lifeline = os.pipe()  # only this process holds the write end (not inheritable)
        watchdog = [sys.executable, "-I", ray_watchdog.__file__, str(read_end), self.temp_dir, "--", *command]
        try:
            with open(self.log_path, "wb") as log:
                self.process = subprocess.Popen(
                    watchdog, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                    pass_fds=(read_end,),
                )  # fmt: skip
        finally:
            os.close(read_end)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                lines = self.log_path.read_text(errors="replace").strip().splitlines() if self.log_path.exists() else []
                self.stop()  # removes the temp dir, log included: its last line goes into the message
                raise ConfigError(f"local Ray failed to start: {lines[-1] if lines else 'no output'}")
            if self._head_is_up():
                return self
            time.sleep(0.5)
        self.stop()
        raise ConfigError(f"local Ray did not come up within {timeout:.0f} s")

    def _head_is_up(self) -> bool:
        """Whether drivers can connect: `ray start` writes its address file only once the GCS, the dashboard
        and the raylet are all up (the dashboard port alone answers before the raylet has registered, and a
        driver connecting then fails), and the dashboard answers (jobs are submitted there)."""
        from ray._common.utils import get_ray_address_file  # the file `ray start` writes last

        if not Path(get_ray_address_file(self.temp_dir)).is_file():
            return False
        try:
            with socket.create_connection(("127.0.0.1", self.dashboard_port), timeout=1):
                return True
        except OSError:
            return False

    def stop(self, timeout: float = 60.0) -> None:
        """Stop the head and everything of its session; remove its temp dir (token included)."""
        if self._lifeline is not None:
            os.close(self._lifeline)  # the watchdog sees EOF and stops the session
            self._lifeline = None
        if self.process is not None:
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                ray_watchdog.stop_session(None, self.temp_dir)
            self.process = None
        shutil.rmtree(self.temp_dir, ignore_errors=True)


# Settings of the private local Ray (a user's own environment wins). Ray Train's controller polls its workers
# every 2 s by default: a run's `fit()` returned about 4 s after its last report, with 0.5 s about 1.3 s (a poll
# costs nothing on one node).
LOCAL_RAY_DEFAULTS = {"RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.5"}

_LOCAL: LocalRay | None = None
_SAVED_ENV: dict[str, str | None] = {}


def start_local_ray(num_cpus: int | None = None) -> str:
    """Start this process's private local Ray; RAY_ADDRESS and its token settings point at it until it stops."""
    global _LOCAL
    _LOCAL = LocalRay(num_cpus).start()
    atexit.register(stop_local_ray)
    _SAVED_ENV.update({name: os.environ.get(name) for name in ("RAY_ADDRESS", *AUTH_ENV)})
    os.environ.pop("RAY_AUTH_TOKEN", None)
    os.environ.update(_LOCAL.client_env())
    refresh_ray_auth()
    return _LOCAL.address


def private_ray_running() -> bool:
    """Whether this process runs its private local Ray (a fixed set of nodes: nothing autoscales it)."""
    return _LOCAL is not None


def stop_local_ray() -> None:
    """Stop the private local Ray started by this process, if any, and restore the Ray settings it replaced."""
    global _LOCAL
    if _LOCAL is None:
        return
    import ray

    if ray.is_initialized():
        ray.shutdown()
    for name, value in _SAVED_ENV.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    _SAVED_ENV.clear()
    refresh_ray_auth()
    _LOCAL.stop()
    _LOCAL = None


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail fast, naming the address, when nothing listens at host:port or a web server does (the dashboard's
    port given for the GCS's): ray.init would retry against either for minutes."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not port.isdigit():
        return
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout) as conn:
            answer = _http_answer(conn)
    except OSError as err:
        raise ConfigError(f"Ray at {address} is not reachable ({err.strerror or err}); is the cluster up?") from None
    if answer:  # the GCS speaks gRPC (HTTP/2) and never answers an HTTP/1.0 request line
        raise ConfigError(
            f"{address} answers as a web server ({answer}), not as a Ray head's GCS port: give the address "
            "`ray start --head` printed (port 6379 by default), not the dashboard's (8265)"
        )


def _http_answer(conn: socket.socket, timeout: float = 2.0) -> str:
    """The status line a web server answers to `HEAD /` on `conn`, or "" (no HTTP/1 answer)."""
    conn.settimeout(timeout)
    try:
        conn.sendall(b"HEAD / HTTP/1.0\r\n\r\n")
        first = conn.recv(64)
    except OSError:
        return ""
    return first.split(b"\r\n")[0].decode("latin-1") if first.startswith(b"HTTP/") else ""


@contextlib.contextmanager
def ray_errors(where: str) -> Iterator[None]:
    """Turn Ray's authentication refusals into a ConfigError naming `where`."""
    try:
        yield
    except Exception as err:
        refusal = auth_refusal(err, where)
        if refusal is None:
            raise
        raise refusal from None


def connect(address: str | None = None, num_cpus: int | None = None, log_to_driver: bool = True) -> str:
    """Initialise Ray once per process: `address`, else RAY_ADDRESS, else a private local Ray.

    `log_to_driver=False` keeps the workers' logs in Ray's log files (Tune's progress table still shows)."""
    import ray

    if ray.is_initialized():
        return ray.get_runtime_context().gcs_address
    apply_retry_env()  # before the local head starts: its workers inherit the S3 retry settings
    address = address or os.environ.get("RAY_ADDRESS")
    description = f"Ray cluster at {address}"
    if not address:
        address = start_local_ray(num_cpus)
        description = f"local Ray at {address} (started here, stopped on exit)"
    else:
        enable_configured_token()
        _check_reachable(address)
        _check_auth(address)
    try:
        with ray_errors(address):
            ray.init(address=address, logging_level="WARNING", log_to_driver=log_to_driver)
    except ConfigError:
        raise
    except (ConnectionError, TimeoutError, RuntimeError, ValueError) as err:
        raise ConfigError(f"cannot connect to Ray at {address}: {err}") from None
    return description
