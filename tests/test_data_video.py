"""Frame sampling as CLIP4Clip does it (1 fps over [start, end] inclusive, then linspace(dtype=int)), on real
videos encoded by PyAV whose frames carry their own index, and the decoder's bounded memory (only the
stored frames are ever converted from the decoder's full resolution)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import encode_video
from vtrlab.data import video as V
from vtrlab.data.frames import (
    clip4clip_indices,
    frames_manifest,
    has_clip4clip_frames,
    segment_bounds,
    select_frames,
    stored_positions,
)
from vtrlab.data.video import decode_clip, decode_video
from vtrlab.errors import DataError

W, H = 64, 48  # encoded frame size; decoded at SIZE: 42 x 32 after the resize, so the crop keeps every row
SIZE = 32


def index_video(path: Path, seconds: float, fps: int, codec: str = "libx264") -> Path:
    """A video whose frame ``i`` shows ``i % 60`` in its top half and ``i // 60`` in its bottom half (grey
    levels 8 + 4 * value; lossless H.264, so a frame's index reads back exactly)."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as c:
        st = c.add_stream(codec, rate=fps, options={"qp": "0"} if codec == "libx264" else {})
        st.width, st.height, st.pix_fmt = W, H, "yuv420p"
        if codec != "libx264":
            st.bit_rate = 4_000_000
        for i in range(round(seconds * fps)):
            img = np.empty((H, W, 3), dtype=np.uint8)
            img[: H // 2] = 8 + 4 * (i % 60)
            img[H // 2 :] = 8 + 4 * (i // 60)
            for pkt in st.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(pkt)
        for pkt in st.encode():
            c.mux(pkt)
    return path


def frame_index(frame: np.ndarray) -> int:
    """The index :func:`index_video` drew into a decoded SIZE x SIZE frame."""
    top = frame[4 : SIZE // 2 - 4].mean()
    bottom = frame[SIZE // 2 + 4 : SIZE - 4].mean()
    return round((top - 8) / 4) + 60 * round((bottom - 8) / 4)


def indices_of(frames: np.ndarray) -> list[int]:
    return [frame_index(f) for f in frames]


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("index-videos")
    return {
        "60s@2": index_video(root / "60s_2fps.mp4", 60, 2),
        "40s@1": index_video(root / "40s_1fps.mp4", 40, 1),
        "40s@3": index_video(root / "40s_3fps.mp4", 40, 3),
        "5s@4": index_video(root / "5s_4fps.mp4", 5, 4),
        "4.2s@5": index_video(root / "4p2s_5fps.mp4", 4.2, 5),
        "20s@2": index_video(root / "20s_2fps.mp4", 20, 2),
        "120s@2": index_video(root / "120s_2fps.mp4", 120, 2),
    }


# ------------------------------------------------------------------------------------------------
# Selection
# ------------------------------------------------------------------------------------------------


def test_clip4clip_indices_truncate_like_numpy_linspace_int():
    # CLIP4Clip: np.linspace(0, n - 1, num=max_frames, dtype=int); values written out from that formula
    assert clip4clip_indices(60, 12).tolist() == [0, 5, 10, 16, 21, 26, 32, 37, 42, 48, 53, 59]
    assert clip4clip_indices(32, 12).tolist() == [0, 2, 5, 8, 11, 14, 16, 19, 22, 25, 28, 31]  # not rounded
    for n, f in [(13, 12), (100, 32), (181, 12), (32, 32), (755, 32)]:
        assert clip4clip_indices(n, f).tolist() == np.linspace(0, n - 1, num=f, dtype=int).tolist()
    assert clip4clip_indices(7, 12).tolist() == list(range(7))
    assert clip4clip_indices(0, 12).tolist() == []
    with pytest.raises(ValueError):
        clip4clip_indices(5, 0)


def test_stored_positions_keep_eval_frames_and_add_jitter_frames():
    assert stored_positions(60, 12).tolist() == clip4clip_indices(60, 12).tolist()
    assert stored_positions(60, 12, 12).tolist() == clip4clip_indices(60, 12).tolist()
    for n, f, s in [(60, 12, 24), (300, 32, 48), (31, 12, 16), (1000, 12, 13), (755, 32, 64)]:
        pos = stored_positions(n, f, s)
        assert set(clip4clip_indices(n, f)) <= set(pos), (n, f, s)
        assert (np.diff(pos) > 0).all() and len(pos) == s, (n, f, s, len(pos))
    # the extras fill the widest gaps first: 60 s, 12 + 4 frames -> the middles of the four 6 s gaps
    assert sorted(set(stored_positions(60, 12, 16)) - set(clip4clip_indices(60, 12))) == [13, 29, 45, 56]
    # twice the frames: every gap between evaluation frames split
    pos = stored_positions(300, 32, 64)
    assert np.diff(pos).max() <= np.diff(clip4clip_indices(300, 32)).max() // 2 + 1
    assert stored_positions(20, 12, 24).tolist() == list(range(20))  # all of a short clip: any frame count exact


def test_select_frames_eval_is_clip4clip_and_jitter_stays_in_segments():
    n, f = 60, 12
    pos = stored_positions(n, f, 30)
    evals = select_frames(pos, n, f)
    assert pos[evals].tolist() == clip4clip_indices(n, f).tolist()
    bounds = segment_bounds(n, f)
    assert bounds[0] == 0 and bounds[-1] == n
    assert all(bounds[i] <= e < bounds[i + 1] for i, e in enumerate(clip4clip_indices(n, f)))
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(200):
        idx = select_frames(pos, n, f, rng)
        p = pos[idx]
        assert all(bounds[i] <= p[i] < bounds[i + 1] for i in range(f))
        assert (np.diff(p) > 0).all()
        seen.update(p.tolist())
    assert seen == set(pos.tolist())  # every stored frame is drawn sometime
    # only the eval frames stored: jitter has nothing else to pick
    exact = stored_positions(n, f)
    assert (select_frames(exact, n, f, rng) == np.arange(f)).all()
    # another frame count than the build's: the nearest stored frames, and said so
    assert not has_clip4clip_frames(exact, n, 8) and has_clip4clip_frames(exact, n, f)
    assert len(select_frames(exact, n, 8)) == 8
    with pytest.raises(ValueError):
        select_frames([3, 2], n, f)


# ------------------------------------------------------------------------------------------------
# Decoding real videos
# ------------------------------------------------------------------------------------------------


def test_didemo_span_is_end_inclusive(videos):
    # CLIP4Clip's DiDeMo: start 0, end 31, frames at seconds 0..31 -> 32 frames of a 40 s video
    clip = decode_clip(videos["40s@1"], num_frames=32, size=SIZE, start=0, end=31)
    assert clip.num_sampled == 32 and clip.frames.shape == (32, SIZE, SIZE, 3)
    assert indices_of(clip.frames) == list(range(32))
    # at 3 fps (CLIP4Clip's compressed videos) the first frame of each second: frame 3 s
    clip = decode_clip(videos["40s@3"], num_frames=32, size=SIZE, start=0, end=31)
    assert indices_of(clip.frames) == [3 * s for s in range(32)]
    assert clip.times.tolist() == pytest.approx(list(range(32)))


def test_whole_video_frames_are_linspace_int_of_the_seconds(videos):
    # 60 s at 2 fps: 1 fps frames at 0..59 s, CLIP4Clip's 12 of them (gaps of 5-6 s)
    clip = decode_clip(videos["60s@2"], num_frames=12, size=SIZE)
    seconds = np.linspace(0, 59, num=12, dtype=int)
    assert clip.num_sampled == 60
    assert indices_of(clip.frames) == (2 * seconds).tolist()
    assert clip.positions.tolist() == seconds.tolist() and clip.eval_index.tolist() == list(range(12))
    assert np.array_equal(decode_video(videos["60s@2"], max_frames=12, size=SIZE), clip.frames)


def test_stored_jitter_frames_and_eval_index(videos):
    clip = decode_clip(videos["60s@2"], num_frames=12, stored_frames=24, size=SIZE)
    assert clip.positions.tolist() == stored_positions(60, 12, 24).tolist()
    assert indices_of(clip.frames) == (2 * clip.positions).tolist()
    assert indices_of(clip.frames[clip.eval_index]) == (2 * np.linspace(0, 59, num=12, dtype=int)).tolist()
    meta = clip.sampling_meta()
    assert meta["n"] == 60 and meta["positions"] == clip.positions.tolist()
    assert select_frames(meta["positions"], meta["n"], 12).tolist() == meta["eval_index"]
    assert frames_manifest(12, 24, 1.0, SIZE)["stored"] == "jitter"
    assert frames_manifest(12, 12, 1.0, SIZE)["stored"] == "exact" == frames_manifest(12, None, 1.0, SIZE)["stored"]


def test_span_with_start(videos):
    clip = decode_clip(videos["60s@2"], num_frames=32, size=SIZE, start=10, end=20)
    assert indices_of(clip.frames) == [2 * s for s in range(10, 21)]
    assert clip.times.tolist() == pytest.approx(list(range(10, 21)))


def test_clip_shorter_than_num_frames_keeps_every_second(videos):
    clip = decode_clip(videos["5s@4"], num_frames=12, size=SIZE)
    assert clip.num_sampled == 5 and indices_of(clip.frames) == [0, 4, 8, 12, 16]
    assert clip.eval_index.tolist() == list(range(5))


def test_activitynet_ceil_duration_end(videos):
    # duration 4.2 -> end ceil = 5, inclusive: marks 0..5, of which the video has 0..4 (CLIP4Clip's cv2 reads
    # frame 25 of 21 for second 5 and stops)
    clip = decode_clip(videos["4.2s@5"], num_frames=32, size=SIZE, start=0, end=5)
    assert indices_of(clip.frames) == [0, 5, 10, 15, 20]


def test_mpeg4_avi(tmp_path):
    path = index_video(tmp_path / "v.avi", 12, 3, codec="mpeg4")
    clip = decode_clip(path, num_frames=4, size=SIZE)
    assert clip.num_sampled == 12 and clip.positions.tolist() == [0, 3, 7, 11]
    # the conftest's benchmark videos (AVI/MPEG-4 as MSVD's): 3 s at 6 fps
    other = encode_video(tmp_path / "b.avi")
    assert decode_clip(other, num_frames=12, size=SIZE).num_sampled == 3


def test_resize_crop_matches_torchvision():
    tv = pytest.importorskip("torchvision.transforms")
    from PIL import Image

    rng = np.random.default_rng(0)
    for w, h in [(320, 240), (240, 320), (341, 256), (224, 224), (100, 75), (1280, 720), (481, 360)]:
        img = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        ref = tv.Compose([tv.Resize(224, interpolation=tv.InterpolationMode.BICUBIC), tv.CenterCrop(224)])(img)
        assert np.array_equal(V._resize_crop(img, 224), np.asarray(ref)), (w, h)


def test_errors_name_the_file(tmp_path, videos):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video" * 20)
    with pytest.raises(DataError, match=r"bad\.mp4"):
        decode_clip(bad, num_frames=4, size=SIZE)
    with pytest.raises(DataError, match="no decodable frame"):
        decode_clip(videos["5s@4"], num_frames=4, size=SIZE, start=30, end=40)
    with pytest.raises(DataError, match="empty span"):
        decode_clip(videos["5s@4"], num_frames=4, size=SIZE, start=3, end=2)


def test_packets_without_timestamps_fall_back_to_decoding(videos, monkeypatch):
    monkeypatch.setattr(V, "_scan", lambda *a: None)
    clip = decode_clip(videos["60s@2"], num_frames=12, size=SIZE)
    assert indices_of(clip.frames) == (2 * np.linspace(0, 59, num=12, dtype=int)).tolist()


def test_a_wrong_packet_count_is_corrected_by_the_decoded_count(videos, monkeypatch):
    scan = V._scan
    monkeypatch.setattr(V, "_scan", lambda *a: (scan(*a)[0], 50))
    clip = decode_clip(videos["60s@2"], num_frames=12, size=SIZE)
    assert clip.num_sampled == 60
    assert indices_of(clip.frames) == (2 * np.linspace(0, 59, num=12, dtype=int)).tolist()


def test_only_stored_frames_are_converted_whatever_the_length(videos, monkeypatch):
    """The memory property: a frame leaves the decoder's full resolution only when it is stored, and is
    resized at once, so what is held does not grow with the clip (bench/build_memory.py measures RSS)."""
    calls = []
    real = V._resize_crop

    def counting(img, size):
        calls.append(img.size)
        return real(img, size)

    monkeypatch.setattr(V, "_resize_crop", counting)
    for name in ("20s@2", "120s@2"):
        calls.clear()
        clip = decode_clip(videos[name], num_frames=12, stored_frames=16, size=SIZE)
        assert len(calls) == len(clip.frames) <= 12 + 16
    assert clip.num_sampled == 120
