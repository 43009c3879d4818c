"""Checks before anything starts, against real parts: a trial measured against what the cluster can grow to
(the cluster launcher's config on the head, a small real local Ray; no autoscaler can run here, so the
request it would act on is read back from Ray's GCS), and storage that takes no write."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from servers import run_vtrlab
from vtrlab.errors import ConfigError, StorageError
from vtrlab.train.preflight import BOOTSTRAP_CONFIG, TrialShape, check_cluster_fits, check_storage_writable

KEYS = {"CPU": "train.workers x train.cpus_per_worker + budget.cpus_per_trial", "GPU": "train.workers x gpus"}
# what `ray up` leaves on the head: the launcher config with each node type's resources filled in
LAUNCHER = {
    "cluster_name": "vtrlab",
    "max_workers": 3,
    "head_node_type": "head",
    "available_node_types": {
        "head": {"resources": {"CPU": 2, "vtrlab_driver": 1}, "min_workers": 0, "max_workers": 0},
        "gpu_on_demand": {"resources": {"CPU": 8, "GPU": 1}, "min_workers": 0, "max_workers": 1},
        "gpu_spot": {"resources": {"CPU": 8, "GPU": 1}, "min_workers": 0, "max_workers": 2},
    },
}


def recorded_request() -> list[dict[str, float]]:
    """The bundles the last `request_resources` asked for, as the autoscaler would read them from the GCS."""
    from ray.autoscaler._private.constants import AUTOSCALER_RESOURCE_REQUEST_CHANNEL
    from ray.autoscaler.v2.utils import is_autoscaler_v2
    from ray.experimental.internal_kv import _internal_kv_get

    assert not is_autoscaler_v2()  # a local head: request_resources writes the v1 request into the GCS
    return json.loads(_internal_kv_get(AUTOSCALER_RESOURCE_REQUEST_CHANNEL) or b"[]")


@pytest.fixture
def launcher_head(ray_local, tmp_path, monkeypatch):
    """The local Ray with a home directory holding the launcher's config, as on a `ray up` head."""
    from ray.autoscaler.sdk import request_resources

    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "ray_bootstrap_config.yaml").write_text(yaml.safe_dump(LAUNCHER))
    yield ray_local
    request_resources(bundles=[])  # no request left behind for the session's other tests


def test_a_gpu_trial_on_a_cluster_scaled_to_zero_asks_the_autoscaler(launcher_head):
    shape = TrialShape(2, {"CPU": 4, "GPU": 1}, {"CPU": 1, "vtrlab_driver": 0.01})
    assert check_cluster_fits(shape, "paper.yaml", KEYS) is True
    assert recorded_request() == shape.bundles()
    small = TrialShape(1, {"CPU": 1}, {"CPU": 0.1})  # fits the nodes there are: nothing asked
    assert check_cluster_fits(small, "small.yaml", KEYS) is False


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        (
            TrialShape(4, {"CPU": 4, "GPU": 1}, {"CPU": 1}),
            rf"big\.yaml: one trial needs 4 GPUs \(train\.workers x gpus\) but the cluster has up to 3 at full "
            rf"scale \(the node types of {BOOTSTRAP_CONFIG}\)",
        ),
        (TrialShape(1, {"CPU": 16, "GPU": 1}, {"CPU": 1}), r"big\.yaml: no node type of the cluster can hold one"),
        (
            TrialShape(1, {"CPU": 1}, {"CPU": 1, "vtrlab_driver": 0.01, "CPU_ONLY": 1}),
            r"needs 1 CPU_ONLY \(the custom resource nodes offer for trial drivers\) but the cluster has up to 0",
        ),
    ],
)
def test_a_trial_that_cannot_fit_even_at_full_scale_is_refused(launcher_head, shape, message):
    before = recorded_request()
    with pytest.raises(ConfigError, match=message):
        check_cluster_fits(shape, "big.yaml", KEYS)
    assert recorded_request() == before  # refused before asking for anything


def test_a_ray_started_here_is_measured_as_it_is(ray_local, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))  # no launcher config: ray.init() started this one, nothing grows it
    with pytest.raises(ConfigError, match=r"one trial needs 1 GPUs \(train\.workers x gpus\) but the cluster has 0$"):
        check_cluster_fits(TrialShape(1, {"CPU": 1, "GPU": 1}, {"CPU": 0.1}), "gpu.yaml", KEYS)


UNKNOWN_CLUSTER = """
import json, sys
import ray
ray.init(address=sys.argv[1], log_to_driver=False, logging_level="ERROR")
from vtrlab.train.preflight import TrialShape, check_cluster_fits
lines = []
asked = check_cluster_fits(TrialShape(1, {"CPU": 1, "GPU": 1}, {"CPU": 0.1}), "gpu.yaml", {}, say=lines.append)
print(json.dumps({"asked": asked, "lines": lines}))
"""


def test_a_cluster_of_unknown_capacity_is_asked_not_refused(ray_local, tmp_path):
    """A driver that joined a cluster it did not start, with neither the autoscaler's config nor the
    launcher's: a GPU trial on a cluster without GPUs now is asked for, and the capacity named unknown."""
    address = ray_local.get_runtime_context().gcs_address
    env = {**os.environ, "HOME": str(tmp_path)}
    env.pop("RAY_ADDRESS", None)
    try:
        result = subprocess.run(
            [sys.executable, "-c", UNKNOWN_CLUSTER, address], env=env, capture_output=True, text=True, timeout=300
        )
        assert result.returncode == 0, result.stderr[-3000:]
        outcome = json.loads(result.stdout.strip().splitlines()[-1])
        assert outcome["asked"] is True
        (line,) = outcome["lines"]
        assert line.startswith("gpu.yaml: one trial needs 1.1 CPU, 1 GPU;")
        assert "its capacity at full scale is unknown" in line and "asked the autoscaler" in line
        assert recorded_request() == [{"CPU": 0.1}, {"CPU": 1, "GPU": 1}]
    finally:
        from ray.autoscaler.sdk import request_resources

        request_resources(bundles=[])


# ---- storage ---------------------------------------------------------------------------------------


def test_storage_that_takes_no_write_is_refused_naming_it(s3_endpoint, s3_bucket, tmp_path):
    import boto3

    missing = "s3://vtrlab-no-such-bucket/sweeps"
    with pytest.raises(StorageError, match=rf"paper\.yaml: storage {missing} is not writable .*NoSuchBucket"):
        check_storage_writable(missing, "paper.yaml")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(StorageError, match=rf"storage {blocker}/state is not writable"):
        check_storage_writable(str(blocker / "state"), "paper.yaml")
    check_storage_writable(f"{s3_bucket}/state", "paper.yaml")  # writable: the marker is written and removed
    listed = boto3.client("s3", endpoint_url=s3_endpoint).list_objects_v2(Bucket=s3_bucket[5:])
    assert listed.get("KeyCount", 0) == 0


def test_a_sweep_with_unwritable_storage_stops_before_anything_starts(s3_endpoint, tmp_path):
    spec = {"name": "nowhere", "benchmarks": ["synthetic"], "methods": {"zero-shot": {}}}
    path = tmp_path / "nowhere.yaml"
    path.write_text(yaml.safe_dump(spec))
    env = {**os.environ, "VTRLAB_HOME": str(tmp_path / "home"), "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/m.db"}
    env.pop("RAY_ADDRESS", None)
    result = run_vtrlab(["sweep", str(path), "--storage", "s3://vtrlab-no-such-bucket/sweeps"], env, timeout=300)
    assert result.returncode == 2, result.stderr[-3000:]
    message = " ".join(result.stderr.split())
    assert "nowhere.yaml: storage s3://vtrlab-no-such-bucket/sweeps is not writable" in message
    assert not (tmp_path / "home" / "sweeps").exists() and not (tmp_path / "m.db").exists()
