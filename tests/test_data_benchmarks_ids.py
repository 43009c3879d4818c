"""ActivityNet and DiDeMo as released: ids an id list names that the caption file lacks are skipped (as
CLIP4Clip skips them) and listed in the manifest with the reason; ``strict_ids`` / ``--strict-ids`` keeps
the error."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from vtrlab.data.build import build
from vtrlab.data.card import load_card
from vtrlab.data.cli import data_app
from vtrlab.data.parsers import parse_annotations
from vtrlab.errors import DataError


def _activitynet(tmp_path, benchmark_fixtures):
    ann = tmp_path / "ann"
    shutil.copytree(benchmark_fixtures["activitynet"]["annotations"], ann)
    ids = json.loads((ann / "train_ids.json").read_text())
    # as released: ids with no caption (one before the first video), and a repeated id
    (ann / "train_ids.json").write_text(json.dumps(["v_gone0000000", *ids, "v_gone1111111", ids[0]]))
    return ann, ids


def _didemo(tmp_path, benchmark_fixtures):
    ann = tmp_path / "ann"
    shutil.copytree(benchmark_fixtures["didemo"]["annotations"], ann)
    lines = (ann / "test_list.txt").read_text().splitlines()
    (ann / "test_list.txt").write_text("\n".join([*lines, "999@N00_1_gone.mp4"]) + "\n")
    return ann, lines


def test_activitynet_ids_without_captions_are_skipped(tmp_path, benchmark_fixtures):
    ann, ids = _activitynet(tmp_path, benchmark_fixtures)
    parsed = parse_annotations(load_card("activitynet"), ann)
    assert [it.video_id for it in parsed["train"]] == ids
    assert parsed.skipped == {
        "train": [
            {"video_id": "v_gone0000000", "reason": "no caption in train.json (listed in train_ids.json, entry [0])"},
            {"video_id": "v_gone1111111", "reason": "no caption in train.json (listed in train_ids.json, entry [4])"},
        ]
    }
    assert len(parsed["val"]) == 2 and "val" not in parsed.skipped
    with pytest.raises(DataError, match=r"train_ids.json: entry \[0\]: video id 'v_gone0000000' is not a key of"):
        parse_annotations(load_card("activitynet"), ann, strict_ids=True)


def test_didemo_ids_without_descriptions_are_skipped(tmp_path, benchmark_fixtures):
    ann, lines = _didemo(tmp_path, benchmark_fixtures)
    parsed = parse_annotations(load_card("didemo"), ann, ["test"])
    assert [it.video_id for it in parsed["test"]] == lines
    assert parsed.skipped == {
        "test": [
            {
                "video_id": "999@N00_1_gone.mp4",
                "reason": "no caption in test_data.json (listed in test_list.txt, line 3)",
            }
        ]
    }
    with pytest.raises(DataError, match=r"test_list.txt: line 3: video '999@N00_1_gone.mp4' has no description"):
        parse_annotations(load_card("didemo"), ann, ["test"], strict_ids=True)


def test_msvd_stays_strict(tmp_path, benchmark_fixtures):
    ann = tmp_path / "ann"
    shutil.copytree(benchmark_fixtures["msvd"]["annotations"], ann)
    (ann / "val_list.txt").write_text("gone_1_2\n")  # CLIP4Clip asserts every MSVD id has captions
    with pytest.raises(DataError, match=r"val_list.txt: line 1: video id 'gone_1_2' is not a key of"):
        parse_annotations(load_card("msvd"), ann, ["val"])


def test_build_lists_skipped_ids_in_the_manifest(tmp_path, benchmark_fixtures):
    ann, ids = _activitynet(tmp_path, benchmark_fixtures)
    videos = benchmark_fixtures["activitynet"]["videos"]
    out = str(tmp_path / "out")
    opts = {"shard_samples": 8, "num_frames": 2, "image_size": 16}
    man = build("activitynet", ann, videos, out, ["train"], executor="local", **opts)
    info = man["splits"]["train"]
    assert info["videos"] == len(ids)
    assert [s["video_id"] for s in info["skipped"]] == ["v_gone0000000", "v_gone1111111"]
    assert all(s["reason"].startswith("no caption in train.json") for s in info["skipped"])
    with pytest.raises(DataError, match="is not a key of"):
        build(
            "activitynet", ann, videos, str(tmp_path / "strict"), ["train"], executor="local", strict_ids=True, **opts
        )
    assert not (tmp_path / "strict").exists()


def test_cli_strict_ids(tmp_path, benchmark_fixtures):
    ann, _ = _didemo(tmp_path, benchmark_fixtures)
    args = ["build", "didemo", "--annotations", str(ann), "--videos", str(benchmark_fixtures["didemo"]["videos"])]
    args += ["--splits", "test", "--executor", "local", "--image-size", "16", "--num-frames", "2"]
    res = CliRunner().invoke(data_app, [*args, "--out", str(tmp_path / "strict"), "--strict-ids"])
    assert res.exit_code != 0 and "has no description" in str(res.exception)
    res = CliRunner().invoke(data_app, [*args, "--out", str(tmp_path / "ok")])
    assert res.exit_code == 0, res.output
    man = json.loads((tmp_path / "ok" / "manifest.json").read_text())
    assert [s["video_id"] for s in man["splits"]["test"]["skipped"]] == ["999@N00_1_gone.mp4"]
