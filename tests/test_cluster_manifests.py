"""Every shipped deployment manifest (ray_cluster.yaml, jobs/*.yaml, the regression workflow) keeps Ray's
token authentication on, runs MLflow only with basic-auth on PostgreSQL, and holds no secret in plain text; the
Ray clusters autoscale and keep the trial drivers of the specs they run off spot nodes."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
MANIFESTS = [
    REPO / "ray_cluster.yaml",
    *sorted((REPO / "jobs").glob("*.yaml")),
    REPO / ".github/workflows/regression.yml",
]
SECRET_NAMES = ("RAY_AUTH_TOKEN", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN", "AWS_SECRET_ACCESS_KEY")
SECRET_NAMES += ("MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY", "MLFLOW_BACKEND_STORE_URI")


def _strings(node):
    if isinstance(node, dict):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)
    elif isinstance(node, str):
        yield node


def _mappings(node):
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _mappings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _mappings(value)


def _mlflow_problems(command: str) -> list[str]:
    problems = []
    if not re.search(r"--app-name[ =]basic-auth", command):
        problems.append(f"MLflow server without basic-auth: {command[:120]}")
    if "sqlite:" in command:
        problems.append("MLflow server on SQLite, not PostgreSQL")
    if "--backend-store-uri" in command:
        problems.append("MLflow's backend URI (with its password) on the command line, not from a secret")
    return problems


def problems_of(docs: list, name: str) -> list[str]:
    """What makes these parsed YAML documents of manifest `name` unsafe (empty: nothing)."""
    problems = []
    for doc in docs:
        for text in _strings(doc):
            if re.search(r"RAY_AUTH_MODE\s*[=:]\s*['\"]?disabled", text):
                problems.append(f"{name}: RAY_AUTH_MODE=disabled")
            for command in re.findall(r"[^\n;&|]*\bray start\b[^\n;&|]*", text):
                if "RAY_AUTH_MODE=token" not in command:
                    problems.append(f"{name}: `ray start` without RAY_AUTH_MODE=token: {command.strip()[:100]}")
            if re.search(r"\bmlflow server\b", text):
                problems += [f"{name}: {p}" for p in _mlflow_problems(text)]
            for secret in SECRET_NAMES:
                if re.search(rf"\b{secret}=(?!\$)\S", text):
                    problems.append(f"{name}: {secret} given in plain text")
        for mapping in _mappings(doc):
            kind = mapping.get("kind", "")
            if kind in ("RayJob", "RayCronJob"):
                job = mapping["spec"].get("jobTemplate", mapping["spec"])
                auth = job["rayClusterSpec"].get("authOptions") or {}
                if auth.get("mode") != "token" or not auth.get("secretName"):
                    problems.append(f"{name}: {kind} without authOptions mode token from a Secret")
                env = (yaml.safe_load(job.get("runtimeEnvYAML") or "{}") or {}).get("env_vars", {})
                problems += [f"{name}: {k} in the job's runtime env" for k in env if k in SECRET_NAMES]
                if str(env.get("RAY_AUTH_MODE", "")).lower() == "disabled":
                    problems.append(f"{name}: RAY_AUTH_MODE=disabled in the job's runtime env")
            if "name" in mapping and "value" in mapping and mapping["name"] in SECRET_NAMES:
                problems.append(f"{name}: {mapping['name']} as a plain value, not from a Secret")
            if "command" in mapping and isinstance(mapping["command"], list) and "server" in mapping["command"]:
                problems += [f"{name}: {p}" for p in _mlflow_problems(" ".join(map(str, mapping["command"])))]
            env = mapping.get("env")
            if isinstance(env, dict) and "RAY_ADDRESS" in env:  # the workflow's job
                if env.get("RAY_AUTH_MODE") != "token":
                    problems.append(f"{name}: the workflow connects to Ray without RAY_AUTH_MODE=token")
                for secret in ("RAY_AUTH_TOKEN", "MLFLOW_TRACKING_PASSWORD"):
                    if not str(env.get(secret, "")).startswith("${{ secrets."):
                        problems.append(f"{name}: {secret} not from the repository's secrets")
    if name == "ray_cluster.yaml":
        commands = " ".join(_strings(docs[0]))
        if "mlflow server" not in commands:
            problems.append(f"{name}: no MLflow server")
        if "--dashboard-host=0.0.0.0" in commands:
            problems.append(f"{name}: dashboard on 0.0.0.0 (reach it through `ray dashboard`)")
    return problems


def _load(path: Path) -> list:
    return list(yaml.safe_load_all(path.read_text()))


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_shipped_manifest_is_authenticated(path):
    assert problems_of(_load(path), path.name) == []


def test_every_cluster_road_runs_an_authenticated_tracking_server():
    servers = [p.name for p in MANIFESTS if re.search(r"\bmlflow\b.*\bserver\b", p.read_text())]
    assert "ray_cluster.yaml" in servers and "mlflow-server.yaml" in servers


def _replace(node, old: str, new: str):
    if isinstance(node, dict):
        return {k: _replace(v, old, new) for k, v in node.items()}
    if isinstance(node, list):
        return [_replace(v, old, new) for v in node]
    return node.replace(old, new) if isinstance(node, str) else node


@pytest.mark.parametrize(
    ("path", "old", "new", "found"),
    [
        ("ray_cluster.yaml", "RAY_AUTH_MODE=token", "RAY_AUTH_MODE=disabled", "RAY_AUTH_MODE=disabled"),
        ("ray_cluster.yaml", "RAY_AUTH_MODE=token ", "", "without RAY_AUTH_MODE=token"),
        ("ray_cluster.yaml", "--app-name basic-auth ", "", "without basic-auth"),
        ("jobs/mlflow-server.yaml", "--app-name=basic-auth", "--workers=2", "without basic-auth"),
        ("jobs/rayjob.yaml", "PYTHONPATH: /app/platform", "RAY_AUTH_MODE: disabled", "disabled"),
        ("jobs/rayjob.yaml", "AWS_RETRY_MODE: standard", "MLFLOW_TRACKING_PASSWORD: hunter2", "runtime env"),
        (".github/workflows/regression.yml", "${{ secrets.RAY_AUTH_TOKEN }}", "abc", "RAY_AUTH_TOKEN"),
    ],
)
def test_the_check_finds_disabled_authentication(path, old, new, found):
    docs = _load(REPO / path)
    changed = [_replace(copy.deepcopy(d), old, new) for d in docs]
    assert changed != docs
    assert any(found in p for p in problems_of(changed, Path(path).name))


def test_the_check_finds_a_kuberay_cluster_without_auth():
    docs = _load(REPO / "jobs/rayjob.yaml")
    del docs[0]["spec"]["rayClusterSpec"]["authOptions"]
    assert any("authOptions" in p for p in problems_of(docs, "rayjob.yaml"))


# ---- trial drivers stay off spot nodes ------------------------------------------------------------------

DRIVER_RESOURCE = "vtrlab_driver"
# the shipped manifests and the specs they run (the KubeRay jobs name theirs in their entrypoint)
DRIVER_ROADS = {
    "ray_cluster.yaml": ["sweeps/paper.yaml", "sweeps/regression.yaml"],
    "jobs/rayjob.yaml": None,
    "jobs/regression-raycronjob.yaml": None,
}


def _ray_start_resources(params: dict) -> dict[str, float]:
    """KubeRay's rayStartParams as Ray resources: num-cpus, num-gpus and the JSON string of `resources`."""
    import json

    resources = {}
    if "resources" in params:
        text = json.loads(params["resources"])  # KubeRay's documented form: a JSON string holding a JSON object
        resources.update(json.loads(text) if isinstance(text, str) else text)
    for key, name in (("num-cpus", "CPU"), ("num-gpus", "GPU")):
        if key in params:
            resources[name] = float(params[key])
    return resources


def node_groups(doc: dict) -> tuple[list[tuple[str, dict, bool]], list[str]]:
    """([(group, Ray resources it declares, whether it may be spot)], [specs its job runs])."""
    if "available_node_types" in doc:  # the cluster launcher
        groups = []
        for name, node_type in doc["available_node_types"].items():
            market = (node_type.get("node_config", {}).get("InstanceMarketOptions") or {}).get("MarketType")
            groups.append((name, dict(node_type.get("resources") or {}), market == "spot" or "spot" in name))
        return groups, []
    job = doc["spec"].get("jobTemplate", doc["spec"])
    cluster = job["rayClusterSpec"]
    head = cluster["headGroupSpec"]
    groups = [("head", _ray_start_resources(head.get("rayStartParams") or {}), False)]
    for worker in cluster.get("workerGroupSpecs") or []:  # a worker pool may be spot: never trust it with drivers
        groups.append((worker["groupName"], _ray_start_resources(worker.get("rayStartParams") or {}), True))
    return groups, re.findall(r"sweeps/[\w.-]+\.yaml", job.get("entrypoint", ""))


def driver_problems(doc: dict, name: str, specs: list[str]) -> list[str]:
    """Why trial drivers of `specs` could land on a spot node of manifest `name`, or find no node."""
    groups, named = node_groups(doc)
    problems = []
    if "kind" in doc and not doc["spec"].get("jobTemplate", doc["spec"])["rayClusterSpec"].get(
        "enableInTreeAutoscaling"
    ):
        problems.append(f"{name}: the cluster does not autoscale (enableInTreeAutoscaling)")
    for spec_path in specs or named:
        budget = yaml.safe_load((REPO / spec_path).read_text()).get("budget") or {}
        resource = budget.get("driver_resource")
        if resource is None:
            problems.append(f"{name}: {spec_path} places its trial drivers anywhere (no budget.driver_resource)")
            continue
        offering = [(group, res, spot) for group, res, spot in groups if res.get(resource, 0) > 0]
        if not offering:
            problems.append(f"{name}: no node offers {resource}, which {spec_path} asks for")
        problems += [f"{name}: spot group {g} offers {resource}" for g, _, spot in offering if spot]
        needed = budget.get("cpus_per_trial", 0.1) * budget.get("max_concurrent", 2)
        if offering and not any(res.get("CPU", 0) >= needed for _, res, spot in offering if not spot):
            problems.append(f"{name}: no node offering {resource} has the {needed:g} CPUs of {spec_path}'s drivers")
    return problems


@pytest.mark.parametrize("path", list(DRIVER_ROADS), ids=lambda p: Path(p).name)
def test_trial_drivers_are_kept_off_spot_nodes(path):
    (doc,) = _load(REPO / path)
    assert driver_problems(doc, path, DRIVER_ROADS[path]) == []
    assert node_groups(doc)[1] or DRIVER_ROADS[path]  # every road names the specs it runs


def test_the_shipped_cluster_specs_ask_for_the_driver_resource():
    for spec_path in ("sweeps/paper.yaml", "sweeps/regression.yaml"):
        assert yaml.safe_load((REPO / spec_path).read_text())["budget"]["driver_resource"] == DRIVER_RESOURCE


@pytest.mark.parametrize(
    ("path", "change", "found"),
    [
        ("ray_cluster.yaml", lambda d: d["available_node_types"]["head"]["resources"].pop(DRIVER_RESOURCE), "no node"),
        (
            "ray_cluster.yaml",
            lambda d: d["available_node_types"]["gpu_spot"].update(resources={DRIVER_RESOURCE: 1, "CPU": 48}),
            "spot group gpu_spot",
        ),
        ("ray_cluster.yaml", lambda d: d["available_node_types"]["head"]["resources"].update(CPU=0), "CPUs"),
        (
            "jobs/rayjob.yaml",
            lambda d: d["spec"]["rayClusterSpec"]["headGroupSpec"]["rayStartParams"].pop("resources"),
            "no node",
        ),
        ("jobs/rayjob.yaml", lambda d: d["spec"]["rayClusterSpec"].pop("enableInTreeAutoscaling"), "autoscale"),
        (
            "jobs/regression-raycronjob.yaml",
            lambda d: d["spec"]["jobTemplate"]["rayClusterSpec"]["workerGroupSpecs"][0]["rayStartParams"].update(
                resources='"{\\"vtrlab_driver\\": 1}"'
            ),
            "spot group gpu",
        ),
    ],
)
def test_the_check_finds_drivers_that_spot_nodes_can_take(path, change, found):
    (doc,) = _load(REPO / path)
    change(doc)
    assert any(found in p for p in driver_problems(doc, path, DRIVER_ROADS[path]))
