"""`vtrlab submit` and `vtrlab jobs`: sweeps as Ray Jobs on a cluster's head (http://HEAD:8265).

Authentication is Ray's token mode with Ray's own settings (`RAY_AUTH_TOKEN_PATH`, `RAY_AUTH_TOKEN` or
`~/.ray/auth_token`; `RAY_AUTH_MODE=token` is implied when a token is configured); a refusal is a ConfigError
naming the dashboard. Secrets never travel in the job's runtime environment, which the dashboard shows: the
job forwards only the non-secret settings in FORWARDED_ENV, and finds its credentials (MLflow's, S3's) on the
cluster's nodes, where the cluster configuration puts them (README, "On a cluster").
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

from vtrlab.cluster import auth_refusal, enable_configured_token, ray_errors
from vtrlab.errors import ConfigError
from vtrlab.storage import apply_retry_env

REPO_ROOT = Path(__file__).resolve().parents[2]
AGENT_WAIT_SECONDS = 90
FORWARDED_ENV = (  # what the README documents `vtrlab submit` forwarding; never a secret, never VTRLAB_HOME
    "MLFLOW_TRACKING_URI",
    "MLFLOW_S3_ENDPOINT_URL",
    "AWS_ENDPOINT_URL",
    "AWS_DEFAULT_REGION",
    "AWS_RETRY_MODE",
    "AWS_MAX_ATTEMPTS",
)
ENDPOINTS = ("MLFLOW_TRACKING_URI", "MLFLOW_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL")


def forwarded_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The submitting machine's settings a job gets: FORWARDED_ENV, except endpoints on a loopback address
    (this laptop's 127.0.0.1 is not the cluster's: the cluster's own settings apply there)."""
    from urllib.parse import urlparse

    environ = dict(os.environ if environ is None else environ)
    out = {}
    for name in FORWARDED_ENV:
        value = environ.get(name)
        if not value:
            continue
        if name in ENDPOINTS and (urlparse(value).hostname or "") in ("127.0.0.1", "localhost", "::1"):
            continue
        out[name] = value
    return out


def _dashboard(address: str | None) -> str:
    address = address or os.environ.get("RAY_ADDRESS")
    if not address:
        raise ConfigError("no Ray dashboard address: pass --address http://HEAD:8265 or set RAY_ADDRESS")
    return address


def job_client(address: str | None):
    """A JobSubmissionClient for the dashboard at `address` (or RAY_ADDRESS), authenticated with Ray's token
    settings; a clear error if it is unreachable or refuses the token."""
    from ray.job_submission import JobSubmissionClient

    address = _dashboard(address)
    enable_configured_token()
    try:
        return JobSubmissionClient(address)
    except Exception as err:  # AuthenticationError, ConnectionError, requests errors, bad scheme
        refusal = auth_refusal(err, address)
        if refusal is not None:
            raise refusal from None
        raise ConfigError(f"cannot reach the Ray dashboard at {address}: {err}") from None


def job_status(job_id: str, address: str | None) -> str:
    """The job's status (PENDING, RUNNING, SUCCEEDED, FAILED, STOPPED)."""
    client = job_client(address)
    with ray_errors(_dashboard(address)):
        return client.get_job_status(job_id).value


def job_logs(job_id: str, address: str | None) -> str:
    """The job's driver logs so far."""
    client = job_client(address)
    with ray_errors(_dashboard(address)):
        return client.get_job_logs(job_id)


def stop_job(job_id: str, address: str | None) -> bool:
    """Ask the cluster to stop the job; False when it had already finished."""
    client = job_client(address)
    with ray_errors(_dashboard(address)):
        return client.stop_job(job_id)


def stage_job_dir(spec_path: Path, staging: Path) -> str:
    """Lay out the job's working directory: the vtrlab package (source root `platform/`), the job
    entrypoint and the spec; returns the spec's path inside it. Nothing else of the checkout travels."""
    package = Path(__file__).resolve().parent
    shutil.copytree(package, staging / "platform" / "vtrlab", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (staging / "jobs").mkdir()
    shutil.copy(REPO_ROOT / "jobs" / "sweep.py", staging / "jobs" / "sweep.py")
    (staging / "sweeps").mkdir()
    shutil.copy(spec_path, staging / "sweeps" / spec_path.name)
    return f"sweeps/{spec_path.name}"


def submit_sweep(spec: str, address: str | None, resume: bool = False, extra_pip: list[str] | None = None) -> str:
    """Submit `vtrlab sweep SPEC` as a Ray Job and return its id. The working directory carries the package
    and the spec (the cluster's Python needs vtrlab's dependencies: ray_cluster.yaml installs them), and
    the non-secret tracking/storage settings (`forwarded_env`) go with the job."""
    from vtrlab.sweep.spec import load_sweep_spec

    spec_path = Path(spec).resolve()
    load_sweep_spec(spec_path)  # fail here, naming the file and key, not on the cluster
    env = forwarded_env()
    apply_retry_env(env)
    env["PYTHONPATH"] = "platform"
    client = job_client(address)
    with tempfile.TemporaryDirectory(prefix="vtrlab-job-") as staging:
        relative = stage_job_dir(spec_path, Path(staging))
        runtime_env = {"working_dir": staging, "env_vars": env}
        if extra_pip:
            runtime_env["pip"] = extra_pip
        entrypoint = f"python jobs/sweep.py {relative}" + (" --resume" if resume else "")
        deadline = time.monotonic() + AGENT_WAIT_SECONDS
        while True:
            try:
                return client.submit_job(
                    entrypoint=entrypoint, runtime_env=runtime_env, metadata={"vtrlab.spec": spec_path.name}
                )
            except Exception as err:  # RuntimeError with the HTTP status, AuthenticationError
                refusal = auth_refusal(err, _dashboard(address))
                if refusal is not None:
                    raise refusal from None
                # a head that has just started answers 500 "No available agent" until its job agent is up
                if "No available agent" not in str(err) or time.monotonic() > deadline:
                    raise ConfigError(f"Ray at {_dashboard(address)} refused the job: {err}") from None
                time.sleep(2)
