"""Faults injected, nothing lost: S3 behind a fault-injecting proxy (503 SlowDown, 500, delays, reset
connections, GetObject bodies cut mid-way; tests/faultproxy.py) on every S3 path vtrlab has: the shard build,
the training stream, checkpoint uploads through pyarrow (what Ray Train writes with) and adapter uploads by
an MLflow server whose artifacts go to S3. Each completes with the same bytes as without faults, under the
one retry configuration (AWS_RETRY_MODE/AWS_MAX_ATTEMPTS, vtrlab's defaults: standard mode, 5 attempts)."""

from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path

import boto3
import pytest
from mlflow.tracking import MlflowClient

from faultproxy import FaultProxy
from servers import MlflowServer
from vtrlab import storage
from vtrlab.data.build import build
from vtrlab.data.loader import make_eval_loader, make_train_loader


@pytest.fixture
def proxy(s3_endpoint, monkeypatch, request):
    """A FaultProxy in front of moto, made the S3 endpoint of this process (AWS_ENDPOINT_URL)."""
    faults = FaultProxy(s3_endpoint, seed=sum(map(ord, request.node.name))).start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", faults.url)
    yield faults
    faults.stop()


def _objects(endpoint: str, url: str) -> dict[str, str]:
    """{key below url: sha256} read straight from moto, not through the proxy (pyarrow's empty directory
    markers, keys ending in "/", left out)."""
    _, bucket, prefix = storage.split_url(url)
    client = boto3.client("s3", endpoint_url=endpoint)
    out = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/"):
        for obj in page.get("Contents", []):
            if obj["Key"].endswith("/"):
                continue
            body = client.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
            out[obj["Key"][len(prefix) + 1 :]] = hashlib.sha256(body).hexdigest()
    return out


def _upload_dir(endpoint: str, local: Path, url: str) -> None:
    _, bucket, prefix = storage.split_url(url)
    client = boto3.client("s3", endpoint_url=endpoint)
    for path in local.rglob("*"):
        if path.is_file():
            client.upload_file(str(path), bucket, f"{prefix}/{path.relative_to(local).as_posix()}")


def _rows(url: str, split: str) -> list[tuple]:
    return [
        (vid, tuple(caps), hashlib.sha256(b["frames"][i].numpy().tobytes()).hexdigest())
        for b in make_eval_loader(url, split, batch_size=3, num_frames=4, max_words=16)
        for i, (vid, caps) in enumerate(zip(b["video_id"], b["captions"], strict=True))
    ]


@pytest.mark.slow
def test_data_build_through_faults(benchmark_fixtures, s3_endpoint, s3_bucket, ray_local, monkeypatch):
    fx = benchmark_fixtures["msrvtt"]
    opts = {"shard_samples": 2, "num_frames": 6, "image_size": 32, "executor": "ray"}
    clean = build("msrvtt", fx["annotations"], fx["videos"], f"{s3_bucket}/clean", **opts)
    faults = FaultProxy(s3_endpoint, seed=2).start()
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL", faults.url)  # the shard tasks get it in the store's spec
        faulty = build("msrvtt", fx["annotations"], fx["videos"], f"{s3_bucket}/faulty", **opts)
    finally:
        faults.stop()
        monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    print("faults injected:", dict(faults.counts))
    assert faults.counts["slowdown"] + faults.counts["internal"] > 0 and faults.counts["reset"] > 0
    assert faulty["splits"].keys() == clean["splits"].keys()
    for split, info in clean["splits"].items():
        assert [(s["path"], s["samples"]) for s in faulty["splits"][split]["shards"]] == [
            (s["path"], s["samples"]) for s in info["shards"]
        ]
        assert _rows(f"{s3_bucket}/faulty", split) == _rows(f"{s3_bucket}/clean", split)
    assert sorted(_objects(s3_endpoint, f"{s3_bucket}/faulty")) == sorted(_objects(s3_endpoint, f"{s3_bucket}/clean"))


def test_training_stream_through_faults(synth_small, s3_endpoint, s3_bucket, monkeypatch):
    url = f"{s3_bucket}/synth"
    _upload_dir(s3_endpoint, Path(synth_small), url)

    def epoch() -> list[tuple]:
        loader = make_train_loader(url, "train", batch_size=8, num_frames=4, max_words=16, seed=3, epoch_batches=8)
        return [
            (tuple(b["video_id"]), tuple(b["caption"]), hashlib.sha256(b["frames"].numpy().tobytes()).hexdigest())
            for b in loader
        ]

    expected, expected_test = epoch(), _rows(url, "test")
    faults = FaultProxy(s3_endpoint, seed=2, truncate_rate=0.5).start()
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL", faults.url)
        assert epoch() == expected  # same pairs, same frames, shards' sha256 verified by the loader
        assert _rows(url, "test") == expected_test
    finally:
        faults.stop()
    print("faults injected:", dict(faults.counts))
    assert faults.counts["truncate"] > 0  # bodies cut mid-way, resumed with ranged, ETag-checked GETs


def test_checkpoint_upload_through_faults(s3_endpoint, s3_bucket, proxy, tmp_path):
    """A checkpoint directory written the way Ray Train persists one (its pyarrow copy helper) onto the
    filesystem vtrlab gives Ray (`storage.pyarrow_filesystem`), then restored through the same faults."""
    from ray.train.v2._internal.execution.storage import _pyarrow_fs_copy_files

    checkpoint = tmp_path / "checkpoint_000001"
    (checkpoint / "optimizer").mkdir(parents=True)
    (checkpoint / "adapter.safetensors").write_bytes(os.urandom(12 * 2**20))  # several multipart parts
    (checkpoint / "optimizer" / "state.pt").write_bytes(os.urandom(300_000))
    (checkpoint / "progress.json").write_text('{"epoch": 1}')
    fs, path = storage.pyarrow_filesystem(f"{s3_bucket}/runs/trial_0")
    assert path == f"{s3_bucket[5:]}/runs/trial_0"
    fs = pickle.loads(pickle.dumps(fs))  # as a Ray Train worker gets it, retry strategy included
    _pyarrow_fs_copy_files(str(checkpoint), f"{path}/checkpoint_000001", destination_filesystem=fs)
    local = {
        p.relative_to(checkpoint).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in checkpoint.rglob("*")
        if p.is_file()
    }
    assert _objects(s3_endpoint, f"{s3_bucket}/runs/trial_0/checkpoint_000001") == local
    from ray.train import Checkpoint

    # restored as the training loop restores one (vtrlab.storage.checkpoint_directory: a download whose
    # response stream breaks mid-object is retried whole, which pyarrow's own retries do not cover)
    with storage.checkpoint_directory(Checkpoint(f"{path}/checkpoint_000001", filesystem=fs)) as restored:
        assert {
            p.relative_to(restored).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in Path(restored).rglob("*")
            if p.is_file()
        } == local
    print("faults injected:", dict(proxy.counts))
    assert sum(proxy.counts.values()) > 0


@pytest.mark.slow
def test_adapter_logging_through_faults(s3_endpoint, s3_bucket, tmp_path):
    """Adapters logged to an MLflow server whose artifacts go to S3 through the faults (the cluster's
    configuration: proxied artifacts); the server's boto3 retries by the same AWS_* settings."""
    faults = FaultProxy(s3_endpoint, seed=4, error_rate=0.3, reset_rate=0.15).start()
    env = storage.apply_retry_env({"AWS_ENDPOINT_URL": faults.url, "MLFLOW_S3_ENDPOINT_URL": faults.url})
    server = MlflowServer(tmp_path, f"{s3_bucket}/mlartifacts", env=env).start()
    try:
        client = MlflowClient(server.uri)
        experiment = client.create_experiment("faults")
        adapter = tmp_path / "adapter"
        adapter.mkdir()
        files = {"adapter_config.json": b'{"method": "mv-adapter"}', "adapter.safetensors": os.urandom(9 * 2**20)}
        files |= {f"extra_{i}.bin": os.urandom(20_000 + i) for i in range(6)}
        for name, data in files.items():
            (adapter / name).write_bytes(data)
        run_ids = []
        for _ in range(2):
            run = client.create_run(experiment)
            client.log_artifacts(run.info.run_id, str(adapter), "adapter")
            run_ids.append(run.info.run_id)
    finally:
        server.stop()
        faults.stop()
    print("faults injected:", dict(faults.counts))
    assert faults.counts["slowdown"] + faults.counts["internal"] > 0 and faults.counts["reset"] > 0
    stored = _objects(s3_endpoint, f"{s3_bucket}/mlartifacts")
    expected = {
        f"{experiment}/{run_id}/artifacts/adapter/{name}": hashlib.sha256(data).hexdigest()
        for run_id in run_ids
        for name, data in files.items()
    }
    assert stored == expected  # every file once, whole, and nothing else
