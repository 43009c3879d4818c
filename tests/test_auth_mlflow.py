"""MLflow with authentication on a real database: `mlflow server --app-name basic-auth` on PostgreSQL (both
started by the tests on 127.0.0.1). Anonymous writes and alias moves are refused and reported as one-line
errors naming the server; with credentials (environment or MLflow's credentials file) a client creates runs,
registers a version and moves an alias; several processes writing at once meet no database lock."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from servers import MlflowServer, PostgresServer
from vtrlab.errors import ConfigError
from vtrlab.tracking.store import check_tracking_server, tracking_auth_errors

pytestmark = pytest.mark.slow  # the servers take ~30 s to come up (PostgreSQL migrations of runs and users)

CRED_VARS = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN")


@pytest.fixture(scope="module")
def postgres():
    server = PostgresServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def mlflow_auth(postgres, tmp_path_factory):
    """{uri, user, password, admin}: basic-auth MLflow on PostgreSQL (runs and users), a user `vtrlab`."""
    workdir = tmp_path_factory.mktemp("mlflow-auth")
    admin = secrets.token_hex(8)
    server = MlflowServer(
        workdir, str(workdir / "artifacts"), backend=postgres.create_database("mlflow"), admin_password=admin,
        workers=2,
    )  # fmt: skip
    server.start(auth_database=postgres.create_database("mlflow_auth"))
    password = secrets.token_hex(8)
    server.create_user("vtrlab", password)
    server.create_user("intruder", "intruder-password")
    yield {"uri": server.uri, "user": "vtrlab", "password": password, "admin": admin, "workdir": workdir}
    server.stop()


@pytest.fixture
def as_user(monkeypatch):
    def login(user: str | None, password: str | None = None):
        for name in CRED_VARS:
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HOME", os.environ.get("HOME", "/nonexistent"))
        if user:
            monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", user)
            monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)

    return login


def test_anonymous_writes_and_alias_moves_are_refused(mlflow_auth, as_user, tmp_path, monkeypatch):
    uri = mlflow_auth["uri"]
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.mlflow/credentials
    as_user(None)
    with pytest.raises(ConfigError, match="no credentials were sent") as refused:
        check_tracking_server(uri)
    assert uri in str(refused.value) and "(401)" in str(refused.value) and "\n" not in str(refused.value)
    as_user("vtrlab", "wrong-password")
    with pytest.raises(ConfigError, match="credentials of 'vtrlab' were rejected"):
        check_tracking_server(uri)

    as_user(mlflow_auth["user"], mlflow_auth["password"])  # a model with a champion, owned by vtrlab
    client = MlflowClient(uri)
    experiment = client.create_experiment("refusals")
    run = client.create_run(experiment)
    client.create_registered_model("refusals-model")
    version = client.create_model_version("refusals-model", f"runs:/{run.info.run_id}/adapter", run.info.run_id)
    client.set_registered_model_alias("refusals-model", "champion", version.version)

    as_user(None)
    anonymous = MlflowClient(uri)
    for write in (
        lambda: anonymous.create_experiment("anonymous"),
        lambda: anonymous.log_metric(run.info.run_id, "t2v_R1", 99.0),
        lambda: anonymous.set_registered_model_alias("refusals-model", "champion", version.version),
        lambda: anonymous.delete_registered_model_alias("refusals-model", "champion"),
    ):
        with pytest.raises(MlflowException) as raw:
            write()
        assert raw.value.get_http_status_code() == 401
        refused = f"MLflow tracking server {uri} refused the request \\(401\\)"
        with pytest.raises(ConfigError, match=refused), tracking_auth_errors(uri):
            write()
    as_user("intruder", "intruder-password")  # authenticated, without permission on the model
    with pytest.raises(ConfigError, match="user 'intruder' lacks the permission"), tracking_auth_errors(uri):
        MlflowClient(uri).set_registered_model_alias("refusals-model", "champion", version.version)

    as_user(mlflow_auth["user"], mlflow_auth["password"])
    assert client.get_model_version_by_alias("refusals-model", "champion").version == version.version
    assert "t2v_R1" not in client.get_run(run.info.run_id).data.metrics
    assert not [e for e in client.search_experiments() if e.name == "anonymous"]


def test_with_credentials_a_client_runs_registers_and_moves_an_alias(mlflow_auth, as_user, tmp_path):
    uri = mlflow_auth["uri"]
    as_user(mlflow_auth["user"], mlflow_auth["password"])
    check_tracking_server(uri)
    client = MlflowClient(uri)
    experiment = client.create_experiment("with-credentials")
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"method": "mv-adapter"}))
    (adapter / "adapter.safetensors").write_bytes(os.urandom(4096))
    versions = []
    for r1 in (10.0, 20.0):
        run = client.create_run(experiment)
        client.log_metric(run.info.run_id, "t2v_R1", r1)
        client.log_artifacts(run.info.run_id, str(adapter), "adapter")
        client.set_terminated(run.info.run_id)
        if not versions:
            client.create_registered_model("vtrlab-auth-model")
        versions.append(
            client.create_model_version("vtrlab-auth-model", f"runs:/{run.info.run_id}/adapter", run.info.run_id)
        )
        client.set_registered_model_alias("vtrlab-auth-model", "champion", versions[-1].version)
    champion = client.get_model_version_by_alias("vtrlab-auth-model", "champion")
    assert champion.version == versions[-1].version
    assert sorted(a.path for a in client.list_artifacts(champion.run_id, "adapter")) == [
        "adapter/adapter.safetensors",
        "adapter/adapter_config.json",
    ]


def test_credentials_file_is_read_like_mlflow_does(mlflow_auth, tmp_path):
    """The cluster road: no secret in the environment, ~/.mlflow/credentials on the node."""
    (tmp_path / ".mlflow").mkdir()
    credentials = tmp_path / ".mlflow" / "credentials"
    credentials.write_text(
        f"[mlflow]\nmlflow_tracking_username = {mlflow_auth['user']}\n"
        f"mlflow_tracking_password = {mlflow_auth['password']}\n"
    )
    credentials.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if k not in CRED_VARS}
    code = (
        "import sys\nfrom mlflow.tracking import MlflowClient\n"
        "from vtrlab.tracking.store import check_tracking_server\n"
        "check_tracking_server(sys.argv[1]); c = MlflowClient(sys.argv[1])\n"
        "r = c.create_run(c.create_experiment('from-credentials-file')); c.log_metric(r.info.run_id, 'm', 1.0)\n"
        "print('ok', r.info.run_id)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, mlflow_auth["uri"]], env={**env, "HOME": str(tmp_path)},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0 and result.stdout.startswith("ok"), result.stderr[-3000:]


def test_an_unreachable_database_is_named(mlflow_auth, postgres, as_user):
    as_user(mlflow_auth["user"], mlflow_auth["password"])
    postgres.halt()
    try:
        with pytest.raises(ConfigError, match="database may be unreachable") as refused:
            check_tracking_server(mlflow_auth["uri"], timeout=30)
        assert mlflow_auth["uri"] in str(refused.value)
    finally:
        postgres.serve()
    check_tracking_server(mlflow_auth["uri"], timeout=30)


WRITER = """
import sys
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient
uri, experiment, index, steps = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
client = MlflowClient(uri)
run = client.create_run(experiment, tags={"writer": str(index)})
for step in range(steps):
    client.log_metric(run.info.run_id, "loss", 1.0 / (step + 1), step=step)
    client.log_batch(run.info.run_id, metrics=[Metric(f"m{k}", float(step * k), 0, step) for k in range(8)])
client.set_terminated(run.info.run_id)
print(run.info.run_id)
"""


def test_concurrent_writers_meet_no_database_lock(mlflow_auth, as_user):
    """4 processes, each 30 log_metric + 30 log_batch (8 metrics) calls, at once on one experiment."""
    uri, steps = mlflow_auth["uri"], 30
    as_user(mlflow_auth["user"], mlflow_auth["password"])
    client = MlflowClient(uri)
    experiment = client.create_experiment("concurrent")
    command = [sys.executable, "-c", WRITER, uri, experiment]
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    writers = [subprocess.Popen([*command, str(i), str(steps)], **pipes) for i in range(4)]
    outputs = [w.communicate(timeout=600) for w in writers]
    for w, (_, err) in zip(writers, outputs, strict=True):
        assert w.returncode == 0 and "locked" not in err.lower(), err[-3000:]
    for out, _ in outputs:
        run_id = out.strip().splitlines()[-1]
        assert [m.step for m in client.get_metric_history(run_id, "loss")] == list(range(steps))
        for k in range(8):
            assert len(client.get_metric_history(run_id, f"m{k}")) == steps
    log = Path(mlflow_auth["workdir"] / "mlflow-server.log").read_text()
    assert "database is locked" not in log and "deadlock" not in log.lower()


@contextlib.contextmanager
def as_admin(mlflow_auth) -> Iterator[None]:
    """Inside: this process's MLflow clients are the server's admin (the credentials before are restored)."""
    with pytest.MonkeyPatch.context() as patch:
        for name in CRED_VARS:
            patch.delenv(name, raising=False)
        patch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
        patch.setenv("MLFLOW_TRACKING_PASSWORD", mlflow_auth["admin"])
        yield


def test_submitted_sweep_with_credentials_registers_and_moves_the_champion(
    mlflow_auth, as_user, synth_small, pretrained_backbone, tmp_path
):
    """The cluster road end to end: `vtrlab submit` from a machine without MLflow credentials to a Ray head
    whose node holds them in MLflow's credentials file; the sweep logs, registers and moves `champion` (from
    an older, worse version the admin registered) on the basic-auth server, and the job's runtime environment
    (what the dashboard shows) holds no secret. The jobs' user may register there only once the admin grants
    it EDIT on the model, and a sweep checks that before it starts (read-only)."""
    import time

    import yaml
    from mlflow.server.auth.client import AuthServiceClient

    from servers import run_vtrlab
    from vtrlab.cluster import LocalRay, refresh_ray_auth
    from vtrlab.tracking.client import Tracker
    from vtrlab.tracking.registry import CHAMPION, register_run
    from vtrlab.train.preflight import check_registry_writable

    uri, model = mlflow_auth["uri"], "vtrlab-synthetic-vtr-tiny"
    with as_admin(mlflow_auth):  # the current champion: an older, worse version owned by the admin
        admin = Tracker(uri)
        older_run, _ = admin.find_or_create_run("older-champion", "older/1", "older", {})
        source = f"runs:/{older_run.run_id}/adapter"
        older = register_run(admin, model, older_run.run_id, source, {"t2v_R1": 0.0}, "t2v_R1", "max", {})
        assert older.alias == CHAMPION
        AuthServiceClient(uri).grant_user_permission(mlflow_auth["user"], "registered_model", model, "READ")
    as_user(mlflow_auth["user"], mlflow_auth["password"])
    with pytest.raises(ConfigError, match=rf"user 'vtrlab' has READ on registered model '{model}'.*needs EDIT"):
        check_registry_writable(uri, [model], "authenticated.yaml")
    with as_admin(mlflow_auth):
        AuthServiceClient(uri).revoke_user_permission(mlflow_auth["user"], "registered_model", model)
        AuthServiceClient(uri).grant_user_permission(mlflow_auth["user"], "registered_model", model, "EDIT")
    check_registry_writable(uri, [model], "authenticated.yaml")
    as_user(None)

    node_home = tmp_path / "node-home"
    (node_home / ".mlflow").mkdir(parents=True)
    credentials = node_home / ".mlflow" / "credentials"
    credentials.write_text(
        f"[mlflow]\nmlflow_tracking_username = {mlflow_auth['user']}\n"
        f"mlflow_tracking_password = {mlflow_auth['password']}\n"
    )
    credentials.chmod(0o600)
    spec = {
        "name": "authenticated",
        "weights": pretrained_backbone,  # rebuildable by whoever pulls the champion
        "benchmarks": ["synthetic"],
        "data": {"synthetic": synth_small},
        "train": {"eval_batch_size": 64},
        "methods": {"zero-shot": {}},
        "register_best": True,
    }
    spec_path = tmp_path / "authenticated.yaml"
    spec_path.write_text(yaml.safe_dump(spec))
    # the head's node environment, as a cluster's: its tracking server (a loopback URI is not forwarded)
    head = LocalRay(num_cpus=2, env={"HOME": str(node_home), "MLFLOW_TRACKING_URI": mlflow_auth["uri"]}).start()
    try:
        env = {k: v for k, v in os.environ.items() if k not in CRED_VARS and k != "RAY_ADDRESS"}
        env |= {"MLFLOW_TRACKING_URI": mlflow_auth["uri"], "VTRLAB_HOME": str(tmp_path / "home"), "HOME": str(tmp_path)}
        env |= {k: v for k, v in head.client_env().items() if k != "RAY_ADDRESS"}
        submitted = run_vtrlab(["submit", str(spec_path), "--address", head.dashboard_url], env, timeout=300)
        assert submitted.returncode == 0, submitted.stderr[-3000:]
        job_id = submitted.stdout.strip().splitlines()[-1]
        deadline, status = time.monotonic() + 900, ""
        while time.monotonic() < deadline and status not in ("SUCCEEDED", "FAILED", "STOPPED"):
            time.sleep(5)
            status = run_vtrlab(["jobs", "status", job_id, "--address", head.dashboard_url], env).stdout.strip()
        logs = run_vtrlab(["jobs", "logs", job_id, "--address", head.dashboard_url], env).stdout
        assert status == "SUCCEEDED", logs[-4000:]
        assert "previous champion 0.00" in " ".join(logs.split()), logs[-4000:]
        from ray.job_submission import JobSubmissionClient

        try:
            with pytest.MonkeyPatch.context() as client_env:  # the head's token for this process, then restored
                client_env.delenv("RAY_AUTH_TOKEN", raising=False)
                for name, value in head.client_env().items():
                    client_env.setenv(name, value)
                refresh_ray_auth()
                shown = str(JobSubmissionClient(head.dashboard_url).get_job_info(job_id))
        finally:
            refresh_ray_auth()
    finally:
        head.stop()
    assert mlflow_auth["password"] not in shown and "MLFLOW_TRACKING_PASSWORD" not in shown
    with as_admin(mlflow_auth):
        client = MlflowClient(uri)
        experiment = client.get_experiment_by_name("sweep-authenticated")
        assert experiment is not None and client.search_runs([experiment.experiment_id])
        champion = client.get_model_version_by_alias(model, "champion")
        assert champion.version != older.version  # moved from the older version to the sweep's
        assert client.get_run(champion.run_id).info.experiment_id == experiment.experiment_id
        assert float(champion.tags["metric.t2v_R1"]) > 0.0
        assert sorted(v.version for v in client.search_model_versions(f"name='{model}'")) == sorted(
            [older.version, champion.version]
        )
