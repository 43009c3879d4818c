"""Ray token authentication: a head started with auth (vtrlab's LocalRay, token generated and kept 0600)
refuses clients without its token, with a one-line error naming the address, and accepts them with it."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import yaml

from servers import run_vtrlab
from vtrlab.cluster import LocalRay

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def head():
    ray = LocalRay(num_cpus=1).start()
    yield ray
    ray.stop()


def _env(tmp_path, **extra) -> dict[str, str]:
    """The user's environment without any Ray token (and a home without ~/.ray/auth_token)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    return {**env, "HOME": str(tmp_path), **extra}


def _one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    return lines[0]


def test_token_file_is_private(head):
    assert head.token_path.stat().st_mode & 0o777 == 0o600
    assert len(head.token_path.read_text()) == 64


def test_jobs_without_the_token_are_refused(head, tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text(yaml.safe_dump({"name": "x", "benchmarks": ["synthetic"], "methods": {"zero-shot": {}}}))
    url = head.dashboard_url
    no_token, wrong_token = _env(tmp_path), _env(tmp_path, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN="0" * 64)
    for args, env, what in [
        (["submit", str(spec), "--address", url], no_token, "no token was sent"),
        (["jobs", "status", "raysubmit_x", "--address", url], wrong_token, "the token was rejected"),
    ]:
        line = _one_line_error(run_vtrlab(args, env, timeout=120))
        assert url in line and what in line, line


def test_connect_without_the_token_is_refused_and_with_it_works(head, tmp_path):
    code = (
        "import ray\nfrom vtrlab.cluster import connect\ntry:\n"
        f" print(connect({head.address!r}), ray.cluster_resources()['CPU'])\n"
        "except Exception as e:\n print(type(e).__name__, e)"
    )
    run = {"capture_output": True, "text": True, "timeout": 120}
    refused = subprocess.run([sys.executable, "-c", code], env=_env(tmp_path), **run)
    assert refused.stdout.startswith("ConfigError") and head.address in refused.stdout, refused.stdout + refused.stderr
    assert "refused the request: no token was sent" in refused.stdout
    token = {k: v for k, v in head.client_env().items() if k != "RAY_ADDRESS"}
    accepted = subprocess.run([sys.executable, "-c", code], env=_env(tmp_path, **token), **run)
    assert accepted.stdout.strip() == f"Ray cluster at {head.address} 1.0", accepted.stdout + accepted.stderr[-2000:]


def test_a_job_with_the_token_runs_and_reaches_ray(head, tmp_path):
    from ray.job_submission import JobSubmissionClient

    env = _env(tmp_path, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(head.token_path))
    code = "import ray; ray.init(); print('cpus', ray.cluster_resources()['CPU'])"  # the job's driver connects too
    previous = {k: os.environ.get(k) for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH", "RAY_AUTH_TOKEN")}
    os.environ.update({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(head.token_path)})
    os.environ.pop("RAY_AUTH_TOKEN", None)
    try:
        from vtrlab.cluster import refresh_ray_auth

        refresh_ray_auth()
        client = JobSubmissionClient(head.dashboard_url)
        job_id = client.submit_job(entrypoint=f'python -c "{code}"')
        deadline = time.monotonic() + 180
        while client.get_job_status(job_id).value not in ("SUCCEEDED", "FAILED", "STOPPED"):
            assert time.monotonic() < deadline, client.get_job_logs(job_id)
            time.sleep(1)
        assert client.get_job_status(job_id).value == "SUCCEEDED", client.get_job_logs(job_id)
        assert "cpus 1.0" in client.get_job_logs(job_id)
        assert head.token_path.read_text() not in str(client.get_job_info(job_id))  # nothing secret on show
    finally:
        for k, v in previous.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
        refresh_ray_auth()
    status = run_vtrlab(["jobs", "status", job_id, "--address", head.dashboard_url], env, timeout=120)
    assert status.returncode == 0 and status.stdout.strip() == "SUCCEEDED", status.stderr[-2000:]
