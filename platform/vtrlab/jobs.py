"""`vtrlab submit` and `vtrlab jobs`: sweeps as Ray Jobs on a cluster's head (http://HEAD:8265)."""

from __future__ import annotations

import os
from pathlib import Path

from vtrlab.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[2]
FORWARDED_ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION",
                 "VTRLAB_HOME")
EXCLUDES = [".venv", ".git", "**/__pycache__", ".pytest_cache", ".ruff_cache", "*.egg-info", "out"]


def job_client(address: str | None):
    """A JobSubmissionClient for the dashboard at `address` (or RAY_ADDRESS), with a clear error if unreachable."""
    from ray.job_submission import JobSubmissionClient

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    address = address or os.environ.get("RAY_ADDRESS")
    if not address:
        raise ConfigError("no Ray dashboard address: pass --address http://HEAD:8265 or set RAY_ADDRESS")
    try:
        return JobSubmissionClient(address)
    except Exception as err:  # ConnectionError, requests errors, bad scheme
        raise ConfigError(f"cannot reach the Ray dashboard at {address}: {err}") from None


def submit_sweep(spec: str, address: str | None, resume: bool = False, extra_pip: list[str] | None = None) -> str:
    """Submit `vtrlab sweep SPEC` as a Ray Job: the repository is the working directory, the package goes in
    with it (its source root on PYTHONPATH), and the tracking/storage environment is forwarded."""
    spec_path = Path(spec).resolve()
    if not spec_path.is_file():
        raise ConfigError(f"{spec}: no such sweep spec")
    from vtrlab.sweep.spec import load_sweep_spec

    load_sweep_spec(spec_path)  # fail here, not on the cluster
    try:
        relative = spec_path.relative_to(REPO_ROOT)
    except ValueError:
        raise ConfigError(f"{spec}: the spec must live inside the repository ({REPO_ROOT}) to travel with it") from None
    env = {name: os.environ[name] for name in FORWARDED_ENV if os.environ.get(name)}
    env["PYTHONPATH"] = "platform"
    env["RAY_AUTH_MODE"] = os.environ.get("RAY_AUTH_MODE", "disabled")
    runtime_env = {"working_dir": str(REPO_ROOT), "excludes": EXCLUDES, "env_vars": env}
    if extra_pip:
        runtime_env["pip"] = extra_pip
    client = job_client(address)
    entrypoint = f"python jobs/sweep.py {relative}" + (" --resume" if resume else "")
    return client.submit_job(entrypoint=entrypoint, runtime_env=runtime_env, metadata={"vtrlab.spec": str(relative)})
