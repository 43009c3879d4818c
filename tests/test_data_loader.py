"""Streaming loaders: batch contract, equal batches per rank/worker, batch diversity (same-video twins), exactly-once
eval, broken shards."""

from __future__ import annotations

import math
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from vtrlab.data.loader import frame_indices, make_eval_loader, make_train_loader
from vtrlab.data.shards import read_manifest
from vtrlab.data.synth import write_caption_shaped
from vtrlab.errors import ConfigError, DataError


def test_frames_are_clip4clips_unless_jitter_is_asked(benchmark_fixtures, tmp_path):
    """Evaluation and (by default) training read exactly the frames CLIP4Clip takes, linspace(dtype=int) of
    the clip's 1-fps frames; jitter draws a stored frame of each frame's segment; synthetic samples (no
    positions) count their stored frames as the 1-fps frames."""
    from vtrlab.data.build import build
    from vtrlab.data.frames import clip4clip_indices, segment_bounds
    from vtrlab.data.shards import iter_shard

    fx = benchmark_fixtures["lsmdc"]
    out = str(tmp_path / "lsmdc")
    build("lsmdc", fx["annotations"], fx["videos"], out, ["test"], num_frames=3, stored_frames=6, image_size=16,
          executor="local")  # fmt: skip
    man = read_manifest(out)
    rng = np.random.default_rng(0)
    for shard in man["splits"]["test"]["shards"]:
        for sample in iter_shard(f"{out}/{shard['path']}"):
            sampling = sample.meta["meta"]["sampling"]
            positions, n = np.asarray(sampling["positions"]), sampling["n"]
            assert positions[frame_indices(sample, 3)].tolist() == clip4clip_indices(n, 3).tolist()
            bounds = segment_bounds(n, 3)
            for _ in range(20):
                picked = positions[frame_indices(sample, 3, rng)]
                assert ((bounds[:-1] <= picked) & (picked < bounds[1:])).all()
    evaluated = next(iter(make_eval_loader(out, "test", batch_size=64, num_frames=3, max_words=16)))
    clip_of = dict(zip(evaluated["video_id"], evaluated["frames"], strict=True))
    train = make_train_loader(out, "test", batch_size=2, num_frames=3, max_words=16, epoch_batches=4)
    for batch in train:  # without jitter, a training clip is its evaluation clip
        for vid, frames in zip(batch["video_id"], batch["frames"], strict=True):
            assert torch.equal(frames, clip_of[vid])
    with pytest.warns(RuntimeWarning, match="built with CLIP4Clip's 3 frames a clip, read with 4"):
        make_eval_loader(out, "test", batch_size=4, num_frames=4, max_words=16)


def test_frames_of_synthetic_samples(synth_small):
    from vtrlab.data.frames import clip4clip_indices
    from vtrlab.data.shards import iter_shard

    man = read_manifest(synth_small)
    sample = next(iter_shard(f"{synth_small}/{man['splits']['test']['shards'][0]['path']}"))
    assert frame_indices(sample, 12).tolist() == clip4clip_indices(sample.num_frames, 12).tolist()


def test_train_batch_contract(synth_small):
    loader = make_train_loader(synth_small, "train", batch_size=8, num_frames=12, max_words=32, seed=1)
    assert len(loader) == 768 // 8
    b = next(iter(loader))
    assert b["frames"].shape == (8, 12, 3, 32, 32) and b["frames"].dtype == torch.uint8
    assert b["frame_mask"].dtype == torch.bool and b["frame_mask"].all()
    assert b["tokens"].shape == (8, 32) and b["tokens"].dtype == torch.int64
    assert len(b["video_id"]) == len(b["caption"]) == 8
    assert ", then " in b["caption"][0] or " after " in b["caption"][0]
    # padding: 12 frames asked from a 1-frame image sample
    b = next(iter(make_train_loader(synth_small, "images", batch_size=4, num_frames=3, max_words=16)))
    assert b["frame_mask"].tolist() == [[True, False, False]] * 4 and (b["frames"][:, 1:] == 0).all()


def test_train_expands_every_caption_and_is_seeded(synth_small):
    def ids(loader):
        return [(v, c) for b in loader for v, c in zip(b["video_id"], b["caption"], strict=True)]

    a = make_train_loader(synth_small, "train", batch_size=16, num_frames=2, max_words=32, seed=3)
    e0, e1 = ids(a), ids(a)  # iterating again = next epoch
    assert len(e0) == len(e1) == 768
    assert e0 != e1
    b = make_train_loader(synth_small, "train", batch_size=16, num_frames=2, max_words=32, seed=3)
    assert ids(b) == e0  # same seed, same epoch, same stream
    b.set_epoch(1)
    assert ids(b) == e1
    # every caption of a video becomes its own pair; coverage of one epoch is high, repeats are few
    per_video = Counter(v for v, _ in set(e0))
    assert max(per_video.values()) == 3
    assert len(set(e0)) / 768 > 0.5


@pytest.mark.parametrize("num_workers", [0, 2])
def test_equal_batches_per_rank_even_with_fewer_shards(synth_small, num_workers):
    man = read_manifest(synth_small)
    assert len(man["splits"]["test"]["shards"]) == 1  # 1 shard, 4 ranks x 2 workers: must not hang
    counts = []
    for rank in range(4):
        loader = make_train_loader(
            synth_small,
            "test",
            batch_size=4,
            num_frames=2,
            max_words=16,
            rank=rank,
            world_size=4,
            num_workers=num_workers,
            seed=0,
        )
        n = sum(1 for _ in loader)
        assert n == len(loader)
        counts.append(n)
    assert len(set(counts)) == 1 and counts[0] >= 64 // (4 * 4)
    loader = make_train_loader(
        synth_small,
        "test",
        batch_size=4,
        num_frames=2,
        max_words=16,
        epoch_batches=7,
        num_workers=num_workers,
    )
    assert sum(1 for _ in loader) == len(loader) >= 7


@pytest.mark.parametrize("world_size", [1, 3, 40])
def test_eval_yields_every_video_once_in_order(synth_small, world_size):
    order = []
    for rank in range(world_size):
        for b in make_eval_loader(
            synth_small,
            "test_multi",
            batch_size=5,
            num_frames=12,
            max_words=32,
            rank=rank,
            world_size=world_size,
        ):
            assert b["tokens"].shape == (sum(len(c) for c in b["captions"]), 32)
            assert b["caption_video_index"].tolist() == [i for i, c in enumerate(b["captions"]) for _ in c]
            assert all(len(c) == 3 for c in b["captions"])
            order.extend(b["video_id"])
    ref = [
        v
        for b in make_eval_loader(synth_small, "test_multi", batch_size=32, num_frames=12, max_words=32)
        for v in b["video_id"]
    ]
    assert order == ref and len(ref) == 32 and len(set(ref)) == 32


def test_eval_with_workers_and_determinism(synth_small):
    def run():
        return [
            (v, b["frames"][i].sum().item())
            for b in make_eval_loader(synth_small, "test", batch_size=8, num_frames=12, max_words=32, num_workers=2)
            for i, v in enumerate(b["video_id"])
        ]

    loader = make_eval_loader(synth_small, "test", batch_size=5, num_frames=2, max_words=8, num_workers=2)
    assert len(loader) == sum(1 for _ in loader) == 2 * 7  # 32 videos per worker, batches of 5
    a = run()
    assert len(a) == 64 and len({v for v, _ in a}) == 64
    assert a == run()


def test_bad_options(synth_small):
    with pytest.raises(ConfigError):
        make_train_loader(synth_small, "train", batch_size=0, num_frames=12, max_words=32)
    with pytest.raises(ConfigError):
        make_eval_loader(synth_small, "test", batch_size=2, num_frames=12, max_words=32, rank=2, world_size=2)
    with pytest.raises(DataError, match="split 'nope'"):
        make_eval_loader(synth_small, "nope", batch_size=2, num_frames=12, max_words=32)


def _broken_copy(src: str, dst: Path, how: str) -> str:
    shutil.copytree(src, dst)
    shard = dst / "train" / "shard-000001.tar"
    data = bytearray(shard.read_bytes())
    if how == "truncate":
        shard.write_bytes(bytes(data[: len(data) // 3]))
    else:  # flip a byte in the middle of a member's payload: the tar still parses, the sha256 does not match
        pos = len(data) // 2
        data[pos] ^= 0xFF
        shard.write_bytes(bytes(data))
    return str(dst)


@pytest.mark.parametrize("how", ["truncate", "flip"])
def test_broken_shard_raises_or_is_skipped(synth_small, tmp_path, how):
    url = _broken_copy(synth_small, tmp_path / "broken", how)
    with pytest.raises(DataError, match=r"train/shard-000001\.tar"):
        for _ in make_eval_loader(url, "train", batch_size=16, num_frames=4, max_words=16):
            pass
    with pytest.warns(RuntimeWarning, match=r"shard-000001\.tar"):
        n = sum(
            len(b["video_id"])
            for b in make_eval_loader(url, "train", batch_size=16, num_frames=4, max_words=16, on_error="skip")
        )
    assert 192 <= n < 256 if how == "truncate" else n >= 192


def test_undecodable_frame_raises_or_is_skipped(synth_small, tmp_path):
    """A frame payload that is not an image (tar and sha256 intact): named in the error, or skipped."""
    import tarfile

    from vtrlab.data.shards import _add

    dst = tmp_path / "badframe"
    shutil.copytree(synth_small, dst)
    shard = dst / "test" / "shard-000000.tar"
    members = []
    with tarfile.open(shard) as tar:
        for m in tar.getmembers():
            members.append((m.name, tar.extractfile(m).read()))
    with tarfile.open(shard, "w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in members:
            _add(tar, name, b"not a png" if name.endswith("000000003.004.png") else data)
    kw = {"batch_size": 8, "num_frames": 12, "max_words": 16, "verify": False}
    with pytest.raises(DataError, match=r"test/shard-000000\.tar: sample 'test-00001-b'"):
        list(make_eval_loader(str(dst), "test", **kw))
    with pytest.warns(RuntimeWarning, match="test-00001-b"):
        ids = [v for b in make_eval_loader(str(dst), "test", on_error="skip", **kw) for v in b["video_id"]]
    assert len(ids) == 63 and "test-00001-b" not in ids


def test_deferred_decode_equals_cpu_decode(tmp_path, benchmark_fixtures, synth_small):
    """decode="device" hands JPEG bytes on; decode_frames (here on the CPU) gives the loader's own frames."""
    from vtrlab.data.build import build
    from vtrlab.data.loader import decode_frames

    fx = benchmark_fixtures["msrvtt"]
    out = str(tmp_path / "jpg")
    build("msrvtt", fx["annotations"], fx["videos"], out, ["train"], num_frames=5, image_size=32, executor="local")
    kw = {"batch_size": 2, "num_frames": 8, "max_words": 16}
    ref = list(make_eval_loader(out, "train", **kw))
    deferred = list(make_eval_loader(out, "train", decode="device", **kw))
    assert "frames" not in deferred[0] and deferred[0]["frames_jpeg_sizes"][0].gt(0).sum() == 3  # 3 s, 1 fps
    for a, b in zip(ref, deferred, strict=True):
        b = decode_frames(b, "cpu")
        assert torch.equal(a["frames"], b["frames"]) and torch.equal(a["frame_mask"], b["frame_mask"])
    b = next(iter(make_train_loader(out, "train", decode="device", **kw)))
    assert decode_frames(b, "cpu")["frames"].shape == (2, 8, 3, 32, 32)
    with pytest.raises(ConfigError, match="needs JPEG"):
        make_eval_loader(synth_small, "test", decode="device", **kw)


def test_truncated_shard_on_s3_names_its_url(synth_small, s3_bucket):
    from vtrlab import storage

    src, dst = storage.open_store(synth_small), storage.open_store(f"{s3_bucket}/syn")
    for key in [*src.list("test"), "manifest.json"]:
        data = src.read_bytes(key)
        dst.write_bytes(key, data[: len(data) // 2] if key.endswith(".tar") else data)
    with pytest.raises(DataError, match=rf"{s3_bucket}/syn/test/shard-000000\.tar"):
        list(make_eval_loader(dst.url, "test", batch_size=8, num_frames=2, max_words=8))


def test_file_urls_and_home_paths(synth_small, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    shutil.copytree(synth_small, tmp_path / "syn")
    for url in (f"file://{synth_small}", "~/syn"):
        n = sum(len(b["video_id"]) for b in make_eval_loader(url, "test", batch_size=16, num_frames=2, max_words=8))
        assert n == 64


# --------------------------------------------------------------------------- batch diversity (same-video twins)


SHAPES = {  # MSR-VTT: 20 captions a video; MSVD: 19-62 (40.5 on average); fewer videos than the real sets
    "msrvtt": lambda rng: np.full(400, 20),
    "msvd": lambda rng: rng.integers(19, 63, 150),
}


@pytest.fixture(scope="module")
def shaped(tmp_path_factory) -> dict[str, tuple[str, np.ndarray]]:
    out = {}
    for name, counts_of in SHAPES.items():
        counts = counts_of(np.random.default_rng(0))
        url = str(tmp_path_factory.mktemp("shaped") / name)
        write_caption_shaped(url, counts, shard_samples=64)
        out[name] = (url, counts)
    return out


def test_twin_share_helpers():
    from vtrlab.data.loader import twin_share, uniform_twin_share

    assert twin_share(["a", "b", "a", "c"]) == 0.5 and twin_share(["a", "b"]) == 0.0
    assert uniform_twin_share([1] * 50, 8) == 0.0  # one caption a video: never a twin
    assert uniform_twin_share([2, 2], 4) == 1.0
    # a batch of 2 from videos with 3 and 1 captions: pairs 1..3 are video a; P(twin) = P(both from a) = 3/6 * 2
    assert uniform_twin_share([3, 1], 2) == pytest.approx(0.5)
    # against a simulated uniform shuffle
    rng = np.random.default_rng(0)
    counts = rng.integers(1, 30, 100)
    pairs = np.repeat(np.arange(100), counts)
    sim = np.mean([twin_share(list(rng.choice(pairs, 16, replace=False))) for _ in range(4000)])
    assert uniform_twin_share(counts, 16) == pytest.approx(sim, abs=0.01)


@pytest.mark.parametrize("shape", list(SHAPES))
def test_batches_are_as_diverse_as_a_uniform_shuffle(shaped, shape):
    """The share of pairs with a same-video twin in their batch stays within 2x of CLIP4Clip's uniform
    shuffle over all pairs (all captions of a video back to back through the 500-pair buffer: 45% here)."""
    from vtrlab.data.loader import twin_share, uniform_twin_share

    url, counts = shaped[shape]
    loader = make_train_loader(url, "train", batch_size=32, num_frames=1, max_words=8, epoch_batches=60, seed=0)
    batches = list(loader)
    share = np.mean([twin_share(b["video_id"]) for b in batches])
    uniform = uniform_twin_share(counts, 32)
    assert 0.05 < uniform < 0.3
    assert share <= 2 * uniform, (share, uniform)
    # the loss's keys: one stable int64 per video id
    from vtrlab.data.loader import video_key

    b = batches[0]
    assert b["video_key"].dtype == torch.int64 and b["video_key"].tolist() == [video_key(v) for v in b["video_id"]]


def test_every_pair_is_drawn_once_per_epoch_in_expectation(shaped):
    """Videos with more captions are drawn proportionally more often (uniform over pairs, not videos)."""
    url, counts = shaped["msvd"]
    loader = make_train_loader(url, "train", batch_size=50, num_frames=1, max_words=8, seed=1)
    assert len(loader) == counts.sum() // 50
    pairs = Counter((v, c) for b in loader for v, c in zip(b["video_id"], b["caption"], strict=True))
    per_video = Counter()
    for (v, _), n in pairs.items():
        per_video[int(v[1:])] += n
    drawn = np.array([per_video[i] for i in range(len(counts))])
    many, few = counts >= 50, counts <= 30
    ratio = (drawn[many].sum() / counts[many].sum()) / (drawn[few].sum() / counts[few].sum())
    assert 0.8 < ratio < 1.25, ratio
    # captions without repeats (see the next test): far more distinct pairs than with random captions (~63%)
    assert len(pairs) / counts.sum() > 0.8, len(pairs) / counts.sum()


def test_visit_captions_spread_each_video_over_its_visits(synth_small):
    from vtrlab.data.loader import TrainStream

    ds = TrainStream(synth_small, "train", batch_size=4, num_frames=1, max_words=8)
    caps = [f"c{k}" for k in range(7)]
    for mean in (7.0, 3.5, 10.0):  # a video with the mean count: one caption a visit; 2 a visit; 0 or 1
        ds.captions_per_video = mean
        emitted = [ds._visit_captions(caps, j, [0, 1, 2]) for j in range(21)]
        assert sum(map(len, emitted)) == pytest.approx(21 * 7 / mean, abs=1)
        assert {len(e) for e in emitted} <= {math.floor(7 / mean), math.ceil(7 / mean)}
        flat = [c for e in emitted for c in e]
        for lo in range(0, len(flat) - 6, 7):
            assert sorted(flat[lo : lo + 7]) == caps  # every cycle of 7 draws is a permutation


def test_a_shard_cut_at_a_member_boundary_is_detected(synth_small, tmp_path):
    """A tar cut between members reads as a shorter, valid tar: with sha256 verification off, the count of
    samples read against the manifest's still catches it, naming the shard."""
    import shutil
    import tarfile

    dst = tmp_path / "synth"
    shutil.copytree(synth_small, dst)
    man = read_manifest(str(dst))
    shard = man["splits"]["test"]["shards"][0]
    path = dst / shard["path"]
    with tarfile.open(path) as tar:
        members = tar.getmembers()
    last_key = members[-1].name.split(".", 1)[0]
    cut = min(m.offset for m in members if m.name.split(".", 1)[0] == last_key)
    with open(path, "r+b") as f:
        f.truncate(cut)
    kw = {"batch_size": 64, "num_frames": 4, "max_words": 16, "verify": False}
    expected = rf"{shard['path']}: the shard holds {shard['samples'] - 1} samples, the manifest says {shard['samples']}"
    with pytest.raises(DataError, match=expected):
        list(make_eval_loader(str(dst), "test", **kw))
    with pytest.warns(RuntimeWarning, match="the manifest says"):
        list(make_eval_loader(str(dst), "test", on_error="skip", **kw))
