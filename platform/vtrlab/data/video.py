"""Video decoding with PyAV: sample at ``fps`` (1 by default), then uniformly down to ``max_frames``,
resize the shorter side to ``size`` (bicubic) and centre-crop to ``size`` x ``size``.

Sampling follows CLIP4Clip: one frame per second at t = start, start + 1, ... (the first decoded frame at
or after each second mark, up to ``end``), then ``np.linspace(0, n - 1, max_frames)`` picks the stored
frames when there are more. Clips shorter than ``max_frames`` seconds keep fewer frames (the loader pads
and masks them). Only the selected frames are converted to RGB, so decoding costs one pass over the
packets. Also: frame encoding (JPEG/PNG/npy) used by the shard writer and the loader.
"""

from __future__ import annotations

import io
import math
import os

import numpy as np
from PIL import Image

from vtrlab.errors import DataError


def _resize_crop(img: Image.Image, size: int) -> np.ndarray:
    w, h = img.size
    scale = size / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    if (nw, nh) != (w, h):
        img = img.resize((nw, nh), Image.Resampling.BICUBIC)
    left, top = (nw - size) // 2, (nh - size) // 2
    img = img.crop((left, top, left + size, top + size))
    return np.asarray(img.convert("RGB"), dtype=np.uint8)


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
    """Frames uint8 [T, size, size, 3] (RGB), 1 <= T <= max_frames. Raises DataError if undecodable.

    ``threads``: decoder threads (0 = FFmpeg's choice; the build's Ray tasks use 1, one task per core)."""
    import av

    path = str(path)
    start = float(start or 0.0)
    try:
        container = av.open(path)
    except Exception as exc:
        raise DataError(f"{path}: cannot open video: {exc}") from None
    picked: list[Image.Image] = []
    try:
        if not container.streams.video:
            raise DataError(f"{path}: no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        if threads:
            stream.thread_count = threads
        tb = stream.time_base
        step = 1.0 / fps
        next_t = start
        if start > 0:
            try:
                container.seek(int(start / tb), stream=stream, backward=True, any_frame=False)
            except Exception:
                container.seek(0)
        last_t = -math.inf
        for frame in container.decode(stream):
            t = (last_t + step if last_t > -math.inf else 0.0) if frame.pts is None else float(frame.pts * tb)
            last_t = t
            if end is not None and t >= end:
                break
            if t + 1e-6 < next_t:
                continue
            picked.append(frame.to_image())
            # next second mark strictly after this frame
            next_t = start + step * (math.floor((t - start) / step + 1e-6) + 1)
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"{path}: cannot decode video: {type(exc).__name__}: {exc}") from None
    finally:
        container.close()
    if not picked:
        raise DataError(f"{path}: no decodable frame in [{start}, {end if end is not None else 'end'}) s")
    n = len(picked)
    if n > max_frames:
        idx = np.linspace(0, n - 1, num=max_frames).round().astype(int)
        picked = [picked[i] for i in idx]
    return np.stack([_resize_crop(im, size) for im in picked])


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
