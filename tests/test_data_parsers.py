"""Parsers of the five benchmarks' annotation files (real formats, tiny fixtures) and their error messages."""

from __future__ import annotations

import json
import shutil

import pytest

from vtrlab.data.card import load_card
from vtrlab.data.parsers import VideoIndex, parse_annotations
from vtrlab.errors import DataError


@pytest.mark.parametrize("name", ["msrvtt", "msvd", "lsmdc", "didemo", "activitynet"])
def test_parsed_counts_and_files(benchmark_fixtures, name):
    fx = benchmark_fixtures[name]
    card = load_card(name)
    parsed = parse_annotations(card, fx["annotations"])
    assert set(parsed) == set(card.splits)
    index = VideoIndex(fx["videos"])
    for split, items in parsed.items():
        skipped = fx["skipped"].get(split, [])
        n_videos, n_caps = fx["expect"][split]
        found = [it for it in items if it.video_id not in skipped]
        assert len(found) == n_videos
        assert sum(len(it.captions) for it in found) == n_caps
        for it in items:
            path = index.find(it)
            if it.video_id in skipped and name == "msrvtt":
                assert path is None
            else:
                assert path is not None, it


def test_protocol_specifics(benchmark_fixtures):
    p = parse_annotations(load_card("msrvtt"), benchmark_fixtures["msrvtt"]["annotations"])
    assert all(len(it.captions) == 3 for it in p["train"])  # every caption of a train video
    assert all(len(it.captions) == 1 for it in p["test"])  # 1k-A: one JSFUSION sentence per video
    p = parse_annotations(load_card("msvd"), benchmark_fixtures["msvd"]["annotations"], ["test"])
    assert p["test"][0].captions[0] == "a man is doing thing0 in 3qqF"  # tokens joined with spaces
    p = parse_annotations(load_card("didemo"), benchmark_fixtures["didemo"]["annotations"], ["train"])
    it = p["train"][0]
    assert it.captions == ["part 0 of 1000 part 1 of 1000"] and (it.start, it.end) == (0.0, 31.0)
    p = parse_annotations(load_card("activitynet"), benchmark_fixtures["activitynet"]["annotations"], ["val"])
    it = p["val"][0]
    assert it.video_id == "v_DDDDDDDDDDD" and it.captions == ["First DDD thing. Then DDD other thing."]
    assert it.end == 5.0
    p = parse_annotations(load_card("lsmdc"), benchmark_fixtures["lsmdc"]["annotations"], ["test"])
    assert p["test"][0].file_hint.startswith("1001_Flight/1001_Flight_00.00.")


def _copy(fx, tmp_path):
    dst = tmp_path / "ann"
    shutil.copytree(fx["annotations"], dst)
    return dst


def test_missing_column_names_file_and_line(benchmark_fixtures, tmp_path):
    ann = _copy(benchmark_fixtures["msrvtt"], tmp_path)
    (ann / "MSRVTT_JSFUSION_test.csv").write_text("key,vid_key,video_id\nret0,msr1,video1\n")
    with pytest.raises(DataError, match=r"MSRVTT_JSFUSION_test.csv: line 1: missing column.*sentence"):
        parse_annotations(load_card("msrvtt"), ann, ["test"])


def test_missing_key_names_file_and_key(benchmark_fixtures, tmp_path):
    ann = _copy(benchmark_fixtures["msrvtt"], tmp_path)
    data = json.loads((ann / "MSRVTT_data.json").read_text())
    del data["sentences"][4]["caption"]
    (ann / "MSRVTT_data.json").write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"MSRVTT_data.json: sentences\[4\]: missing key 'caption'"):
        parse_annotations(load_card("msrvtt"), ann, ["train"])
    ann = _copy(benchmark_fixtures["activitynet"], tmp_path / "anet")
    data = json.loads((ann / "val_1.json").read_text())
    del data["v_EEEEEEEEEEE"]["sentences"]
    (ann / "val_1.json").write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"val_1.json: key 'v_EEEEEEEEEEE': missing key 'sentences'"):
        parse_annotations(load_card("activitynet"), ann, ["val"])


def test_lsmdc_bad_line_and_msvd_unknown_id(benchmark_fixtures, tmp_path):
    ann = _copy(benchmark_fixtures["lsmdc"], tmp_path)
    with open(ann / "LSMDC16_annos_val.csv", "a") as f:
        f.write("clip_only\tno sentence\n")
    with pytest.raises(DataError, match=r"LSMDC16_annos_val.csv: line 2: expected 6 tab-separated columns"):
        parse_annotations(load_card("lsmdc"), ann, ["val"])
    ann = _copy(benchmark_fixtures["msvd"], tmp_path / "msvd")
    (ann / "val_list.txt").write_text("unknown_video_1_2\n")
    with pytest.raises(DataError, match=r"val_list.txt: line 1: video id 'unknown_video_1_2'"):
        parse_annotations(load_card("msvd"), ann, ["val"])


def test_missing_annotation_file(benchmark_fixtures, tmp_path):
    ann = _copy(benchmark_fixtures["didemo"], tmp_path)
    (ann / "test_list.txt").unlink()
    with pytest.raises(DataError, match=r"test_list.txt: annotation file not found"):
        parse_annotations(load_card("didemo"), ann, ["test"])
