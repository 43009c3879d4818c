"""Video decoding with PyAV as CLIP4Clip samples frames, and frame encoding for the shards.

Sampling (CLIP4Clip, ArrowLuo/CLIP4Clip ``RawVideoExtractorCV2.video_to_tensor`` + the dataloaders'
``_get_rawvideo`` with ``slice_framepos=2``):

- One frame per second mark ``start, start + 1, ..., end`` -- the span is INCLUSIVE of ``end`` (CLIP4Clip's
  ``np.arange(start_sec, end_sec + 1)``: DiDeMo's 0..31 gives 32 frames), keeping the marks the video has.
  The frame of mark ``s`` is the first frame shown at or after ``s`` seconds (within ``[s, s + 1)``), times
  counted from the video's first frame: CLIP4Clip's frame ``int(s * fps)`` for constant-rate videos of
  integer fps (its 3 fps compressed videos included). On raw non-integer rates (29.97) OpenCV's
  ``int(fps)`` makes CLIP4Clip's "second" 29 frames, 0.968 s, which drifts; vtrlab keeps true seconds.
- Of those ``n`` frames, the clip's ``F`` frames are :func:`vtrlab.data.frames.clip4clip_indices` ``(n, F)`` =
  ``np.linspace(0, n - 1, F, dtype=int)`` (truncating), all ``n`` when ``n <= F`` (the loader pads and masks).
- Each frame: shorter side resized to ``size`` (PIL bicubic, long side truncated as torchvision's
  ``Resize``), centre-cropped to ``size`` x ``size`` (``CenterCrop``'s rounding), RGB uint8.

Memory (:func:`decode_clip`): ``n`` must be known before the frames are chosen, so a first pass reads the
packets' timestamps without decoding them; the second pass decodes and converts only the chosen frames,
each resized and cropped as soon as it is decoded. Peak memory is the stored ``size`` x ``size`` frames
plus the decoder's own buffers, whatever the clip's length. When the packets have no timestamps a decoding
pass counts the frames first; when the decoded frames disagree with the packet count, the selection is
redone with the decoded count (a further pass), so the frames are always chosen over the frames decoded.

Storage for jittered training (:mod:`vtrlab.data.frames`, :func:`stored_positions`): the ``F`` evaluation
frames exactly, plus, when ``stored_frames > F``, evenly spread extra 1-fps frames up to ``stored_frames`` in
all; :func:`select_frames` picks the evaluation frames (default, also for training) or, with a random generator,
one stored frame from each evaluation frame's segment (training jitter, an option).
"""

from __future__ import annotations

import functools
import io
import math
import os
from dataclasses import dataclass

import numpy as np
from PIL import Image

from vtrlab.data.frames import clip4clip_indices, stored_positions
from vtrlab.errors import DataError

_EPS = 1e-3  # seconds: a frame 1 ms before a mark counts as at the mark (millisecond time bases round)


# ------------------------------------------------------------------------------------------------
# Decoding
# ------------------------------------------------------------------------------------------------


def _resize_crop(img: Image.Image, size: int) -> np.ndarray:
    """torchvision's ``Resize(size, BICUBIC)`` + ``CenterCrop(size)`` on a PIL image, as RGB uint8."""
    w, h = img.size
    if w <= h:
        nw, nh = size, int(size * h / w)
    else:
        nw, nh = int(size * w / h), size
    if (nw, nh) != (w, h):
        img = img.resize((nw, nh), Image.Resampling.BICUBIC)
    top, left = round((nh - size) / 2.0), round((nw - size) / 2.0)
    img = img.crop((left, top, left + size, top + size))
    return np.asarray(img.convert("RGB"), dtype=np.uint8)


@dataclass(frozen=True)
class DecodedClip:
    """The frames a build stores for one clip.

    ``frames`` uint8 [T, size, size, 3] RGB; ``positions`` int64 [T]: each frame's index among the clip's
    ``num_sampled`` 1-fps frames (strictly increasing); ``times`` float64 [T]: its time in seconds from the
    video's first frame; ``eval_index`` int64 [min(n, F)]: indices into ``frames`` of CLIP4Clip's ``F``
    evaluation frames."""

    frames: np.ndarray
    positions: np.ndarray
    times: np.ndarray
    num_sampled: int
    eval_index: np.ndarray

    def sampling_meta(self) -> dict:
        """JSON-ready record of what was stored (for the sample's JSON in the shard)."""
        return {
            "n": self.num_sampled,
            "positions": self.positions.tolist(),
            "eval_index": self.eval_index.tolist(),
            "times": [round(float(t), 3) for t in self.times],
        }


class _Marks:
    """Assigns frames, in presentation order, to the marks ``start + k * step`` (``k = 0..last``, all when
    ``last`` is None): a mark's frame is the first within ``[mark, mark + step)``."""

    def __init__(self, start: float, step: float, last: int | None) -> None:
        self.start, self.step, self.last = start, step, last
        self.prev = -1
        self.count = 0

    def offer(self, t: float) -> int | None:
        """The frame's ordinal among the picked frames, None when not picked; raises StopIteration past
        the span."""
        k = math.floor((t - self.start + _EPS) / self.step)
        if self.last is not None and k > self.last:
            raise StopIteration
        if k < 0 or k <= self.prev:
            return None
        self.prev = k
        self.count += 1
        return self.count - 1


class _NoTimestamps(Exception):
    """A decoded frame without a timestamp after a seek: decode the pass again from the beginning."""


def _open(path: str):
    import av

    try:
        container = av.open(path)
    except Exception as exc:
        raise DataError(f"{path}: cannot open video: {exc}") from None
    if not container.streams.video:
        container.close()
        raise DataError(f"{path}: no video stream")
    return container, container.streams.video[0]


def _scan(path: str, start: float, step: float, last: int | None) -> tuple[int, int] | None:
    """(origin pts, number of picked frames) from the packets' timestamps, without decoding; None when some
    packet has no timestamp."""
    container, stream = _open(path)
    tb = stream.time_base
    pts: list[int] = []
    first: int | None = None
    stop = None if last is None else start + (last + 1) * step + 2.0  # past the span, B-frame reordering margin
    try:
        for pkt in container.demux(stream):
            if pkt.size == 0 or pkt.is_discard:
                continue
            if pkt.pts is None or tb is None:
                return None
            pts.append(pkt.pts)
            first = pkt.pts if first is None else min(first, pkt.pts)
            if stop is not None and pkt.dts is not None and float((pkt.dts - first) * tb) > stop:
                break
    finally:
        container.close()
    if not pts:
        return None
    origin = min(pts)
    marks = _Marks(start, step, last)
    for p in sorted(set(pts)):
        try:
            marks.offer(float((p - origin) * tb))
        except StopIteration:
            break
    return origin, marks.count


def _decode_pass(
    path: str,
    *,
    origin: int | None,
    start: float,
    step: float,
    last: int | None,
    wanted: set[int],
    size: int,
    threads: int,
    seek: bool,
) -> tuple[int, dict[int, tuple[float, np.ndarray]]]:
    """Decode the span once: (number of picked frames, {ordinal: (time, resized frame)} for ``wanted``)."""
    container, stream = _open(path)
    stream.thread_type = "AUTO"
    if threads:
        stream.thread_count = threads
    tb = stream.time_base
    rate = stream.average_rate or stream.guessed_rate
    marks = _Marks(start, step, last)
    kept: dict[int, tuple[float, np.ndarray]] = {}
    prev_t: float | None = None
    seeked = False
    try:
        if seek and origin is not None and tb is not None and start > 0:
            try:
                container.seek(origin + int(start / tb), stream=stream, backward=True, any_frame=False)
                seeked = True
            except Exception:
                container.close()
                container, stream = _open(path)
        for frame in container.decode(stream):
            if frame.pts is not None and tb is not None:
                if origin is None:
                    origin = frame.pts
                t = float((frame.pts - origin) * tb)
            elif seeked and prev_t is None:
                raise _NoTimestamps
            elif rate:
                t = 0.0 if prev_t is None else prev_t + 1.0 / float(rate)
            else:
                raise DataError(f"{path}: frames without timestamps and no frame rate")
            prev_t = t
            try:
                j = marks.offer(t)
            except StopIteration:
                break
            if j is not None and j in wanted:
                kept[j] = (t, _resize_crop(frame.to_image(), size))
    finally:
        container.close()
    return marks.count, kept


def decode_clip(
    path: str | os.PathLike,
    *,
    num_frames: int,
    size: int,
    stored_frames: int | None = None,
    fps: float = 1.0,
    start: float | None = None,
    end: float | None = None,
    threads: int = 0,
) -> DecodedClip:
    """Decode a clip as CLIP4Clip samples it (module docstring): the frames at :func:`stored_positions`
    ``(n, num_frames, stored_frames)`` among its ``n`` frames at ``fps`` over ``[start, end]`` seconds
    (``end`` inclusive; None: from the first frame / to the last), resized and cropped to ``size``.

    ``stored_frames`` None or <= ``num_frames``: only CLIP4Clip's ``num_frames`` frames. ``threads``:
    decoder threads (0 = FFmpeg's choice; the build's Ray tasks use 1, one task per core).
    Raises DataError naming the file when it cannot be opened or decoded, or the span has no frame."""
    path = str(path)
    if num_frames < 1 or size < 1 or fps <= 0:
        raise ValueError(f"num_frames {num_frames}, size {size}, fps {fps}: expected positive values")
    start = float(start or 0.0)
    step = 1.0 / fps
    last = None if end is None else math.floor((float(end) - start + _EPS) / step)
    span = f"[{start:g}, {'end' if end is None else f'{float(end):g}'}] s"
    if last is not None and last < 0:
        raise DataError(f"{path}: empty span {span}")
    try:
        scan = _scan(path, start, step, last)
        seek = scan is not None
        origin, n = scan if scan is not None else (None, None)
        decode_pass = functools.partial(
            _decode_pass, path, start=start, step=step, last=last, size=size, threads=threads
        )
        for _ in range(3):
            if n is None:  # no packet timestamps: count by decoding
                n, _ = decode_pass(origin=None, wanted=set(), seek=False)
            pos = stored_positions(n, num_frames, stored_frames)
            try:
                got, kept = decode_pass(origin=origin, wanted=set(pos.tolist()), seek=seek)
            except _NoTimestamps:
                seek = False
                continue
            if got == n:
                break
            n = got  # the packets miscounted the frames: choose again over the decoded ones
        else:
            raise DataError(f"{path}: frame count changes between decoding passes")
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"{path}: cannot decode video: {type(exc).__name__}: {exc}") from None
    if n == 0:
        raise DataError(f"{path}: no decodable frame in {span}")
    ordered = sorted(kept.items())
    frames = np.stack([fr for _, (_, fr) in ordered])
    evals = clip4clip_indices(n, num_frames)
    return DecodedClip(
        frames=frames,
        positions=pos,
        times=np.array([t for _, (t, _) in ordered], dtype=np.float64),
        num_sampled=n,
        eval_index=np.searchsorted(pos, evals).astype(np.int64),
    )


def decode_video(
    path: str | os.PathLike,
    *,
    max_frames: int,
    size: int,
    fps: float = 1.0,
    start: float | None = None,
    end: float | None = None,
    threads: int = 0,
) -> np.ndarray:
    """CLIP4Clip's ``max_frames`` frames of a clip, uint8 [T, size, size, 3] RGB, 1 <= T <= max_frames
    (:func:`decode_clip` without extra frames). Raises DataError naming the file if undecodable."""
    return decode_clip(path, num_frames=max_frames, size=size, fps=fps, start=start, end=end, threads=threads).frames


# ------------------------------------------------------------------------------------------------
# Frame encoding in shards
# ------------------------------------------------------------------------------------------------


def encode_frame(frame: np.ndarray, fmt: str, quality: int = 90) -> bytes:
    """One HxWx3 uint8 frame as JPEG or PNG bytes."""
    buf = io.BytesIO()
    img = Image.fromarray(frame)
    if fmt == "jpg":
        img.save(buf, format="JPEG", quality=quality, subsampling=0 if quality >= 95 else 2)
    elif fmt == "png":
        img.save(buf, format="PNG", compress_level=1)
    else:
        raise ValueError(f"unknown frame format {fmt!r}")
    return buf.getvalue()


def decode_frame(data: bytes) -> np.ndarray:
    """JPEG/PNG bytes -> HxWx3 uint8 RGB."""
    with Image.open(io.BytesIO(data)) as img:
        if img.mode != "RGB":
            img = img.convert("RGB")
        return np.asarray(img, dtype=np.uint8)


def encode_npy(frames: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(frames, dtype=np.uint8), allow_pickle=False)
    return buf.getvalue()


def decode_npy(data: bytes) -> np.ndarray:
    return np.load(io.BytesIO(data), allow_pickle=False)
