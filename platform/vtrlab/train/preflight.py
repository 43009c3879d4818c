"""Checks before anything starts: the data a run reads is there, and one trial fits the Ray cluster.

A sweep, a regression or `vtrlab train` runs these (after validating its spec) before it writes any state
or creates any run, so a refusal leaves nothing behind.

On an autoscaling cluster a trial is measured against what the cluster can grow to (its node types and
their maximum counts, as the autoscaler publishes them), not what it runs now: a cluster scaled to zero GPU
workers takes a GPU sweep, and the autoscaler is asked for the trial's resources right away. A trial that
cannot fit even at full scale (more GPUs than all nodes together, a worker larger than any node type) is
still refused, naming the keys that size it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from vtrlab.config import TrainSpec
from vtrlab.errors import ConfigError, VtrlabError


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


def _capacity() -> tuple[dict[str, float], dict[str, float] | None, list[dict[str, float]]]:
    """(resources the cluster has now, what its autoscaler can grow it to or None, its node types)."""
    import ray

    now = {k: float(v) for k, v in ray.cluster_resources().items()}
    try:  # the autoscaler's published cluster config (what Ray Train itself reads to size a worker group)
        from ray._private.state import state

        config = state.get_cluster_config()
        maximum = state.get_max_resources_from_cluster_config()
    except Exception:  # no autoscaler (a local or static cluster), or an older Ray
        config, maximum = None, None
    node_types = [dict(group.resources) for group in config.node_group_configs] if config is not None else []
    return now, ({k: float(v) for k, v in maximum.items()} if maximum else None), node_types


def check_cluster_fits(shape: TrialShape, source: str, keys: dict[str, str]) -> bool:
    """Refuse a trial that cannot fit the cluster even at full scale, naming the keys (`keys`: resource ->
    what sets it) that size it; ask the autoscaler for it when the cluster must grow. Returns whether it
    had to ask."""
    now, maximum, node_types = _capacity()
    for resource, needed in shape.total.items():
        have = max(now.get(resource, 0.0), (maximum or {}).get(resource, 0.0))
        if needed > have + 1e-9:
            scale = f"up to {have:g} at full scale" if maximum else f"{have:g}"
            what = keys.get(resource, "the custom resource nodes offer for trial drivers")
            unit = {"CPU": "CPUs", "GPU": "GPUs"}.get(resource, resource)
            raise ConfigError(f"{source}: one trial needs {needed:g} {unit} ({what}) but the cluster has {scale}")
    if node_types:
        for bundle in shape.bundles():
            if not any(all(types.get(k, 0.0) >= v for k, v in bundle.items()) for types in node_types):
                raise ConfigError(
                    f"{source}: no node type of the cluster can hold one {bundle} bundle of a trial "
                    f"(node types: {node_types}); shrink {', '.join(sorted(set(keys.values())))}"
                )
    if all(shape.total.get(k, 0.0) <= now.get(k, 0.0) + 1e-9 for k in shape.total):
        return False
    from ray.autoscaler.sdk import request_resources

    request_resources(bundles=shape.bundles())
    return True


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
