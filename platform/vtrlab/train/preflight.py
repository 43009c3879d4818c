"""Checks before anything starts: the data a run reads is there, and one trial fits the Ray cluster.

A sweep, a regression or `vtrlab train` runs these (after validating its spec) before it writes any state
or creates any run, so a refusal leaves nothing behind.

On an autoscaling cluster a trial is measured against what the cluster can grow to, not what it runs now: a
cluster scaled to zero GPU workers takes a GPU sweep, and the autoscaler is asked for the trial's resources
right away. A trial that cannot fit even at full scale (more GPUs than all nodes together, a worker larger
than any node type) is still refused, naming the keys that size it. What the cluster can grow to comes from,
in order:

1. the cluster config the autoscaler publishes in the GCS (node types and their maximum counts; what Ray
   Train itself reads), which open-source Ray may not publish;
2. the cluster launcher's config on the head, `~/ray_bootstrap_config.yaml` (`ray up` writes it; each node
   type's `resources` x `max_workers`, the head type's once more for the head itself);
3. a Ray this process started itself (`ray.init()`, or vtrlab's private local Ray, which is taken as it is
   even on a launcher head): its nodes, which nothing grows.

On any other cluster the capacity is unknown: a trial that does not fit now is not refused; the autoscaler is
asked for it and a line says that the capacity is unknown (trials wait until the cluster has room).

Storage and the registry are checked the same way before anything starts: `check_storage_writable` writes
and deletes a marker object at the spec's `storage`; `check_registry_writable` asks a basic-auth MLflow
server, without writing, whether the user may add versions to the registered models a run will register.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from vtrlab.config import TrainSpec
from vtrlab.errors import ConfigError, StorageError, VtrlabError


@dataclass(frozen=True)
class TrialShape:
    """What one trial holds: its Train workers' bundles, and the bundle of the Tune function driving them."""

    workers: int
    worker: dict[str, float]
    driver: dict[str, float]

    @property
    def total(self) -> dict[str, float]:
        total = dict(self.driver)
        for key, value in self.worker.items():
            total[key] = total.get(key, 0.0) + value * self.workers
        return total

    def bundles(self) -> list[dict[str, float]]:
        return [self.driver, *([self.worker] * self.workers)]


def trial_shape(train: TrainSpec, cpus_per_trial: float, driver_resource: str | None = None) -> TrialShape:
    worker = {"CPU": train.cpus_per_worker}
    if train.gpus_per_worker:
        worker["GPU"] = train.gpus_per_worker
    driver = {"CPU": cpus_per_trial}
    if driver_resource:
        driver[driver_resource] = DRIVER_SHARE
    return TrialShape(train.workers, worker, driver)


DRIVER_SHARE = 0.01  # of the custom resource that marks nodes a trial's driver may run on (never spot)


BOOTSTRAP_CONFIG = "~/ray_bootstrap_config.yaml"  # the cluster launcher's config on the head (`ray up`)
UNKNOWN = "unknown"


@dataclass(frozen=True)
class Capacity:
    """The cluster's resources now, what it can grow to (None: as now, or unknown), its node types, and
    where that came from (`UNKNOWN`: nowhere; trials are not refused then)."""

    now: dict[str, float]
    maximum: dict[str, float] | None
    node_types: list[dict[str, float]]
    source: str


def launcher_capacity(path: str | Path) -> tuple[dict[str, float], list[dict[str, float]]] | None:
    """(resources of the cluster at full scale, resources of each node type it can start) from a cluster
    launcher config: each type's `resources` x `max_workers`, plus one node of `head_node_type` (the head).
    None when the file is absent or unreadable, or a type that can start has no `resources` (the launcher
    fills them in from the instance type when it can; without them the capacity is not known). An upper
    bound: the config's global `max_workers` may cap the sum lower."""
    import yaml

    path = Path(path).expanduser()
    try:
        config = yaml.safe_load(path.read_text()) or {}
        head = config.get("head_node_type")
        maximum: dict[str, float] = {}
        node_types = []
        for name, node_type in (config.get("available_node_types") or {}).items():
            count = int(node_type.get("max_workers", 0)) + (name == head)
            if count <= 0:
                continue
            if not node_type.get("resources"):
                return None
            resources = {str(k): float(v) for k, v in node_type["resources"].items()}
            node_types.append(resources)
            for key, value in resources.items():
                maximum[key] = maximum.get(key, 0.0) + value * count
    except (OSError, yaml.YAMLError, AttributeError, TypeError, ValueError):
        return None
    return (maximum, node_types) if node_types else None


def _started_here() -> bool:
    """Whether this process started the Ray it is connected to (ray.init() without an address)."""
    from ray._private import worker

    node = getattr(worker, "_global_node", None)
    return bool(node is not None and getattr(node, "head", False))


def _capacity() -> Capacity:
    """What the cluster has now and can grow to (see the module docstring for the sources, in order)."""
    import ray

    from vtrlab.cluster import private_ray_running

    now = {k: float(v) for k, v in ray.cluster_resources().items()}
    try:  # the autoscaler's published cluster config (what Ray Train itself reads to size a worker group)
        from ray._private.state import state

        config = state.get_cluster_config()
        maximum = state.get_max_resources_from_cluster_config()
    except Exception:  # no autoscaler (a local or static cluster), or an older Ray
        config, maximum = None, None
    if config is not None and maximum:
        node_types = [dict(group.resources) for group in config.node_group_configs]
        return Capacity(now, {k: float(v) for k, v in maximum.items()}, node_types, "the autoscaler's cluster config")
    if private_ray_running():
        return Capacity(now, None, [], "this machine")
    launcher = launcher_capacity(BOOTSTRAP_CONFIG)
    if launcher is not None:
        return Capacity(now, launcher[0], launcher[1], f"the node types of {BOOTSTRAP_CONFIG}")
    if _started_here():
        return Capacity(now, None, [], "this machine")
    return Capacity(now, None, [], UNKNOWN)


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _amounts(resources: dict[str, float]) -> str:
    return ", ".join(f"{value:g} {key}" for key, value in sorted(resources.items()))


def check_cluster_fits(
    shape: TrialShape, source: str, keys: dict[str, str], say: Callable[[str], None] = _stderr
) -> bool:
    """Refuse a trial that cannot fit the cluster even at full scale, naming the keys (`keys`: resource ->
    what sets it) that size it; ask the autoscaler for it when the cluster must grow (and `say` so when the
    full-scale capacity is unknown). Returns whether it had to ask."""
    capacity = _capacity()
    now, maximum = capacity.now, capacity.maximum
    known = capacity.source != UNKNOWN
    for resource, needed in shape.total.items():
        have = max(now.get(resource, 0.0), (maximum or {}).get(resource, 0.0))
        if known and needed > have + 1e-9:
            scale = f"up to {have:g} at full scale ({capacity.source})" if maximum is not None else f"{have:g}"
            what = keys.get(resource, "the custom resource nodes offer for trial drivers")
            unit = {"CPU": "CPUs", "GPU": "GPUs"}.get(resource, resource)
            raise ConfigError(f"{source}: one trial needs {needed:g} {unit} ({what}) but the cluster has {scale}")
    if capacity.node_types:
        for bundle in shape.bundles():
            if not any(all(types.get(k, 0.0) >= v for k, v in bundle.items()) for types in capacity.node_types):
                raise ConfigError(
                    f"{source}: no node type of the cluster can hold one {bundle} bundle of a trial "
                    f"(node types: {capacity.node_types}, from {capacity.source}); shrink "
                    f"{', '.join(sorted(set(keys.values())))}"
                )
    if all(shape.total.get(k, 0.0) <= now.get(k, 0.0) + 1e-9 for k in shape.total):
        return False
    from ray.autoscaler.sdk import request_resources

    request_resources(bundles=shape.bundles())
    if not known:
        say(
            f"{source}: one trial needs {_amounts(shape.total)}; the cluster has {_amounts(now) or 'nothing'} now "
            f"and its capacity at full scale is unknown (no autoscaler config published, no {BOOTSTRAP_CONFIG} "
            "here): asked the autoscaler for one trial's resources; trials wait until the cluster has them"
        )
    return True


PROBE_NAME = ".vtrlab-write-probe"


def check_storage_writable(url: str, source: str) -> None:
    """Write and delete a small marker object under `url` (a spec's `storage`), so storage this process cannot
    write (a bucket that does not exist, no s3:PutObject or s3:DeleteObject, a read-only folder) is refused
    naming the URL before any trial starts, not found by a checkpoint that fails hours later."""
    from vtrlab.storage import open_store

    key = f"{PROBE_NAME}-{uuid.uuid4().hex[:12]}"
    try:
        store = open_store(url)
        store.write_bytes(key, b"vtrlab checks that it can write here; delete me if I am left behind\n")
        store.delete(key)
    except (StorageError, OSError) as err:
        raise StorageError(
            f"{source}: storage {url} is not writable ({err}); checkpoints (and a sweep's state) go there: fix "
            "its permissions or give another (--storage)"
        ) from None


WRITE_PERMISSIONS = ("EDIT", "MANAGE")  # MLflow basic-auth: what creating a version and moving an alias needs


def check_registry_writable(uri: str, models: Iterable[str], source: str, timeout: float = 10.0) -> None:
    """On an MLflow server with basic-auth, refuse a run whose registrations would be refused: registering
    adds a version to `vtrlab-<benchmark>-<backbone>` and moves its aliases, which needs EDIT (or MANAGE) on
    a registered model that exists (a new one is the user's own). Nothing is written: the user's permission
    comes from MLflow's per-user check (`/api/3.0/mlflow/users/permissions/get`), and whether the model
    exists from a read. Not checked: admins, a token without a user name, servers without basic-auth or
    without that check, and a model the user cannot even read (MLflow answers 403 alike for one that does
    not exist, so the registration itself will tell)."""
    if urlparse(uri).scheme not in ("http", "https"):
        return
    from mlflow.utils.credentials import get_default_host_creds
    from mlflow.utils.rest_utils import http_request

    creds = get_default_host_creds(uri)
    if not creds.username:
        return

    def get(endpoint: str, params: dict[str, str] | None = None):
        try:
            return http_request(
                creds, endpoint, "GET", params=params, max_retries=0, timeout=timeout, raise_on_status=False
            )
        except Exception:  # unreachable: check_tracking_server names that
            return None

    user = get("/api/2.0/mlflow/users/current")
    if user is None or user.status_code != 200 or user.json().get("user", {}).get("is_admin"):
        return
    for model in models:
        query = {"username": creds.username, "resource_type": "registered_model", "resource_id": model}
        answer = get("/api/3.0/mlflow/users/permissions/get", query)
        if answer is None or answer.status_code != 200:
            return
        permission = str(answer.json().get("permission", ""))
        if permission in WRITE_PERMISSIONS:
            continue
        found = get("/api/2.0/mlflow/registered-models/get", {"name": model})
        if permission == "DENY" or (found is not None and found.status_code == 200):
            raise ConfigError(
                f"{source}: MLflow tracking server {uri}: user {creds.username!r} has {permission} on registered "
                f"model {model!r}, and registering the best trial needs EDIT; ask its admin to grant it, or set "
                "register_best: false"
            )


def check_data_readable(url: str, benchmark: str, source: str, splits: Iterable[str] = ()) -> dict:
    """The manifest of `benchmark`'s shards at `url`, which must hold `splits`; a ConfigError naming the
    spec, the URL and what is wrong otherwise."""
    from vtrlab.data import read_manifest

    try:
        manifest = read_manifest(url)
    except (VtrlabError, OSError) as err:
        raise ConfigError(
            f"{source}: data for {benchmark} at {url} is not readable ({err}); build it with "
            "`vtrlab data build` or `vtrlab data synth`"
        ) from None
    available = manifest.get("splits", {})
    missing = [split for split in splits if split not in available]
    if missing:
        raise ConfigError(
            f"{source}: data for {benchmark} at {url} has no split {', '.join(map(repr, missing))}; "
            f"it has {', '.join(sorted(available)) or 'none'}"
        )
    return manifest


def check_eval_gallery(manifest: dict, url: str, split: str, allow_missing: bool, source: str) -> None:
    """Refuse an evaluation split short of the card's sizes (a ConfigError naming the spec, the URL, the counts
    and the skipped videos) unless `allow_missing`; allowed, say on stderr how many videos stand in as
    zero-frame clips (`vtrlab.data.gallery`)."""
    from vtrlab.data.gallery import eval_gallery
    from vtrlab.errors import DataError

    try:
        gallery = eval_gallery(manifest, split, url, allow_missing=allow_missing)
    except DataError as err:
        raise ConfigError(f"{source}: {err}") from None
    if gallery.missing or (gallery.expected and gallery.eval_videos < gallery.expected["videos"]):
        _stderr(
            f"{source}: {url} split {split!r}: evaluating over {gallery.eval_videos} videos "
            f"({len(gallery.missing)} missing ones as zero-frame clips; the card expects "
            f"{gallery.expected['videos'] if gallery.expected else '?'}), as allow_missing asks"
        )
