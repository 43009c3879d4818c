"""The synthetic temporal benchmark: deterministic, every protocol, reverse-order distractors, image set."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from vtrlab import storage
from vtrlab.data.card import load_card
from vtrlab.data.cli import data_app
from vtrlab.data.shards import iter_shard, read_manifest
from vtrlab.data.synth import generate
from vtrlab.errors import ConfigError
from vtrlab.quickstart import quickstart


def _samples(url, split):
    man = read_manifest(url)
    for sh in man["splits"][split]["shards"]:
        yield from iter_shard(storage.join_url(url, sh["path"]), expected_sha256=sh["sha256"])


def test_counts_and_protocols_match_card(synth_small):
    man = read_manifest(synth_small)
    card = load_card("synthetic")
    assert set(man["splits"]) == set(card.splits)
    for split, spec in card.splits.items():
        info = man["splits"][split]
        assert (info["videos"], info["captions"]) == (spec.videos, spec.captions)
        assert info["protocol"] == spec.protocol
    for s in _samples(synth_small, "test_paragraph"):
        assert len(s.meta["captions"]) == 1 and s.meta["captions"][0].count("then") == 2


def test_deterministic_per_seed(tmp_path):
    a = generate("small", seed=5)
    b = generate("small", seed=5)
    c = generate("small", seed=6)
    assert [r.captions for r in a["train"]] == [r.captions for r in b["train"]]
    assert all(np.array_equal(x.frames, y.frames) for x, y in zip(a["test"], b["test"], strict=True))
    assert [r.captions for r in a["train"]] != [r.captions for r in c["train"]]


def test_cli_synth_to_s3_is_byte_identical_for_a_seed(s3_bucket, synth_small):
    res = CliRunner().invoke(data_app, ["synth", "--out", f"{s3_bucket}/syn", "--seed", "0"])
    assert res.exit_code == 0, res.output
    assert read_manifest(f"{s3_bucket}/syn")["version"] == read_manifest(synth_small)["version"]


def test_reverse_order_twins_have_the_same_frames(synth_small):
    for split in ("test", "test_multi", "test_paragraph", "train"):
        by_id = {s.meta["video_id"]: s for s in _samples(synth_small, split)}
        assert len(by_id) % 2 == 0
        for vid, s in by_id.items():
            if not vid.endswith("-a"):
                continue
            twin = by_id[vid[:-1] + "b"]
            ev, tw = s.meta["meta"]["events"], twin.meta["meta"]["events"]
            assert tw == ev[::-1] and s.meta["captions"] != twin.meta["captions"]
            fa = s.decode(range(s.num_frames))
            fb = twin.decode(range(twin.num_frames))
            # same multiset of frames, different order: only frame order tells the twins apart
            key = lambda f: f.tobytes()  # noqa: E731
            assert sorted(map(key, fa)) == sorted(map(key, fb))
            assert not np.array_equal(fa, fb)
    first = next(_samples(synth_small, "test")).meta["captions"][0]
    assert ", then " in first and first.startswith("a ")


def test_train_and_test_event_pairs_are_disjoint(synth_small):
    def pairs(split):
        return {frozenset(map(tuple, s.meta["meta"]["events"])) for s in _samples(synth_small, split)}

    assert not pairs("train") & pairs("test")


def test_image_caption_set(synth_small):
    caps = []
    for s in _samples(synth_small, "images"):
        assert s.num_frames == 1
        img = s.decode([0])[0]
        assert img.shape == (32, 32, 3) and (img != img[0, 0]).any()
        caps.append(s.meta["captions"][0])
    assert len(caps) == 512 and all(c.startswith("a ") for c in caps)
    assert any(" and " in c for c in caps) and any(" and " not in c for c in caps)
    json.dumps(caps)


def test_demo_size_has_512_test_clips_in_reverse_order_pairs_unseen_in_training():
    data = generate("demo", seed=0)
    assert {split: len(recs) for split, recs in data.items()} == {
        "train": 2048,
        "test": 512,
        "test_multi": 64,
        "test_paragraph": 64,
        "images": 512,
    }
    events = {split: [tuple(map(tuple, r.meta["events"])) for r in data[split]] for split in ("train", "test")}
    assert len(set(events["test"])) == 512  # every test clip's events in order are its own
    pairs = {split: {frozenset(e) for e in evs} for split, evs in events.items()}
    assert len(pairs["test"]) == 256 and not pairs["train"] & pairs["test"]
    for a, b in zip(data["test"][::2], data["test"][1::2], strict=True):
        assert b.meta["events"] == a.meta["events"][::-1]
        assert sorted(f.tobytes() for f in a.frames) == sorted(f.tobytes() for f in b.frames)


def test_quickstart_refuses_a_benchmark_of_another_size(tmp_path, monkeypatch, synth_small):
    """An older quickstart's small benchmark under the same home is not silently reused by the demo size."""
    monkeypatch.setenv("VTRLAB_HOME", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    shutil.copytree(synth_small, tmp_path / "data" / "synthetic")
    with pytest.raises(ConfigError, match=r"size 'small', not 'demo'"):
        quickstart()
