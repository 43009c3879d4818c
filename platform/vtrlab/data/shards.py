"""The shard format, shard writing (atomic, resumable) and shard reading (streaming, with integrity checks).

Layout under a dataset URL (local path, ``file://`` or ``s3://bucket/prefix``)::

    manifest.json                    # written last: its presence means the build is complete
    {split}/shard-NNNNNN.tar         # WebDataset shards (plain POSIX tar, deterministic bytes)
    {split}/shard-NNNNNN.json        # per-shard stats sidecar, committed after its tar (resume marker)

A shard holds one sample per VIDEO (all of its captions, frames stored once). Sample ``KEY`` (a
zero-padded running index in the split; video ids may contain dots, so they are not used as keys):

    KEY.json      {"video_id", "captions": [...], "num_frames", "frame_format", "split", "index",
                   "start", "end", "source", "meta"}
    KEY.000.jpg   frame 0 (JPEG, or .png), KEY.001.jpg, ...   when frame_format is jpg / png
    KEY.frames.npy  uint8 [T, H, W, 3]                          when frame_format is npy

Storing frames as separate JPEGs lets the loader decode only the frames it samples (12 of 16).

``manifest.json``::

    {"format": "vtrlab-shards/1", "name", "card": {...}, "options": {...}, "version": sha256,
     "splits": {split: {"protocol", "samples", "videos", "captions", "expected": {"videos", "captions"},
                        "skipped": [{"video_id", "reason", "captions"}], "shards": [{"path", "samples", "videos",
                        "captions", "bytes", "sha256"}]}}}
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import tarfile
import tempfile
import time
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from vtrlab import storage
from vtrlab.data.video import decode_frame, decode_npy, encode_frame, encode_npy
from vtrlab.errors import DataError, StorageError

FORMAT = "vtrlab-shards/1"
MANIFEST = "manifest.json"


def shard_key(split: str, index: int) -> str:
    return f"{split}/shard-{index:06d}.tar"


def sidecar_key(split: str, index: int) -> str:
    return f"{split}/shard-{index:06d}.json"


def sha256_json(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


# ------------------------------------------------------------------------------------------------
# Writing
# ------------------------------------------------------------------------------------------------


@dataclass
class ClipRecord:
    """One video ready to be written: frames uint8 [T, H, W, 3] plus its captions and metadata."""

    video_id: str
    captions: list[str]
    frames: np.ndarray
    start: float | None = None
    end: float | None = None
    source: str | None = None
    meta: dict | None = None


@dataclass
class Skip:
    """A video that could not be written, with the reason and its captions (the manifest's ``skipped``: an
    evaluation that allows missing videos keeps them in the gallery as zero-frame clips)."""

    video_id: str
    reason: str
    captions: list[str] | None = None


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0
    info.mode = 0o644
    info.uname = info.gname = ""
    tar.addfile(info, io.BytesIO(data))


def sample_files(key: str, split: str, index: int, rec: ClipRecord, fmt: str, quality: int) -> list[tuple]:
    frames = np.asarray(rec.frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
        raise DataError(
            f"video {rec.video_id!r}: frames must be uint8 [T>0, H, W, 3], got {frames.dtype} {frames.shape}"
        )
    meta = {
        "video_id": rec.video_id,
        "captions": list(rec.captions),
        "num_frames": len(frames),
        "frame_format": fmt,
        "split": split,
        "index": index,
        "start": rec.start,
        "end": rec.end,
        "source": rec.source,
        "meta": rec.meta or {},
    }
    files = [(f"{key}.json", json.dumps(meta, sort_keys=True, ensure_ascii=False).encode("utf-8"))]
    if fmt == "npy":
        files.append((f"{key}.frames.npy", encode_npy(frames)))
    else:
        for i, fr in enumerate(frames):
            files.append((f"{key}.{i:03d}.{fmt}", encode_frame(fr, fmt, quality)))
    return files


def write_shard(
    store: storage.Store,
    split: str,
    index: int,
    records: Iterable[ClipRecord | Skip],
    *,
    first_sample_index: int,
    frame_format: str,
    jpeg_quality: int = 90,
    plan_hash: str = "",
) -> dict:
    """Write one shard atomically (local temp file -> temporary key -> commit), then its stats sidecar.

    Returns the sidecar dict: path, samples, videos, captions, bytes, sha256, skipped, plan_hash.
    A shard whose records are all skipped writes no tar (``path`` None) but still writes its sidecar, so a
    rerun does not retry it (delete the sidecar to retry).
    """
    fd, tmp = tempfile.mkstemp(prefix="vtrlab-shard-", suffix=".tar")
    os.close(fd)
    samples = captions = 0
    skipped: list[dict] = []
    try:
        with tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as tar:
            for rec in records:
                if isinstance(rec, Skip):
                    skipped.append({"video_id": rec.video_id, "reason": rec.reason, "captions": rec.captions})
                    continue
                gidx = first_sample_index + samples
                for name, data in sample_files(f"{gidx:09d}", split, gidx, rec, frame_format, jpeg_quality):
                    _add(tar, name, data)
                samples += 1
                captions += len(rec.captions)
        nbytes = os.path.getsize(tmp)
        h = hashlib.sha256()
        with open(tmp, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        key = shard_key(split, index)
        if samples:
            store.put_file(tmp, key)
        stats = {
            "path": key if samples else None,
            "split": split,
            "index": index,
            "samples": samples,
            "videos": samples,
            "captions": captions,
            "bytes": nbytes if samples else 0,
            "sha256": h.hexdigest() if samples else None,
            "skipped": skipped,
            "plan_hash": plan_hash,
            "written_at": time.time(),
        }
        store.write_text(sidecar_key(split, index), json.dumps(stats, sort_keys=True))
        return stats
    finally:
        os.unlink(tmp)


# ------------------------------------------------------------------------------------------------
# Manifest
# ------------------------------------------------------------------------------------------------


def read_manifest(url: str) -> dict:
    """The manifest of the dataset at ``url`` (raises DataError if there is none or it is invalid)."""
    store = storage.open_store(url)
    try:
        text = store.read_text(MANIFEST)
    except StorageError as exc:
        raise DataError(
            f"{storage.join_url(url, MANIFEST)}: no dataset manifest (build it with `vtrlab data build` "
            f"or `vtrlab data synth`): {exc}"
        ) from None
    try:
        man = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{storage.join_url(url, MANIFEST)}: line {exc.lineno}: invalid JSON") from None
    if man.get("format") != FORMAT:
        raise DataError(f"{storage.join_url(url, MANIFEST)}: format {man.get('format')!r}, expected {FORMAT!r}")
    return man


def manifest_split(man: dict, split: str, url: str = "") -> dict:
    if split not in man.get("splits", {}):
        raise DataError(f"{url or man.get('name')}: split {split!r} not in the manifest (has {sorted(man['splits'])})")
    return man["splits"][split]


# ------------------------------------------------------------------------------------------------
# Reading
# ------------------------------------------------------------------------------------------------


class _HashingReader(io.RawIOBase):
    def __init__(self, f):
        self.f, self.h, self.n = f, hashlib.sha256(), 0

    def readable(self):
        return True

    def readinto(self, b):
        data = self.f.read(len(b))
        n = len(data)
        b[:n] = data
        self.h.update(data)
        self.n += n
        return n

    def drain(self):
        for chunk in iter(lambda: self.f.read(1 << 20), b""):
            self.h.update(chunk)
            self.n += len(chunk)

    def close(self):
        try:
            self.f.close()
        finally:
            super().close()


@dataclass
class RawSample:
    """One sample read from a shard: parsed JSON plus the undecoded frame payloads."""

    meta: dict
    frames: list[bytes] | None  # per-frame JPEG/PNG bytes (jpg/png), or None for npy
    npy: bytes | None
    url: str

    @property
    def num_frames(self) -> int:
        return int(self.meta["num_frames"])

    def decode(self, indices: list[int] | np.ndarray) -> np.ndarray:
        """Frames at ``indices`` as uint8 [len(indices), H, W, 3] (decoding only those)."""
        try:
            if self.npy is not None:
                arr = decode_npy(self.npy)
                return arr[np.asarray(indices, dtype=int)]
            return np.stack([decode_frame(self.frames[i]) for i in indices])
        except Exception as exc:
            raise DataError(f"{self.url}: sample {self.meta.get('video_id')!r}: cannot decode frames: {exc}") from None

    def decode_chw(self, indices: list[int] | np.ndarray):
        """Frames at ``indices`` as a torch uint8 tensor [len(indices), 3, H, W] (the loader's layout).

        JPEG frames are decoded by torchvision's libjpeg-turbo decoder (directly channels-first, no PIL
        image objects); PNG through PIL; npy by slicing.
        """
        import torch

        try:
            if self.npy is not None:
                arr = decode_npy(self.npy)[np.asarray(indices, dtype=int)]
                return torch.from_numpy(np.ascontiguousarray(arr)).permute(0, 3, 1, 2)
            if self.meta.get("frame_format", "jpg") == "jpg" and _tv_decode_jpeg() is not None:
                dec, mode = _tv_decode_jpeg()
                # one call per frame: the batched call fans out over torch's intra-op threads, which is
                # 20x slower on a busy 2-core machine and pointless inside DataLoader workers
                # torchvision 0.29 deprecates its image codecs in favour of TorchCodec (not a dependency);
                # they work and are ~25% faster than PIL here: silence just that notice, just here
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)
                    return torch.stack(
                        [
                            dec(torch.frombuffer(bytearray(self.frames[i]), dtype=torch.uint8), mode=mode)
                            for i in indices
                        ]
                    )
            arr = np.stack([decode_frame(self.frames[i]) for i in indices])
            return torch.from_numpy(arr).permute(0, 3, 1, 2)
        except Exception as exc:
            raise DataError(f"{self.url}: sample {self.meta.get('video_id')!r}: cannot decode frames: {exc}") from None


_TV_JPEG: list = []


def _tv_decode_jpeg():
    """(torchvision.io.decode_jpeg, ImageReadMode.RGB), or None when torchvision cannot decode JPEG."""
    if not _TV_JPEG:
        try:
            import torchvision.io as tio

            _TV_JPEG.append((tio.decode_jpeg, tio.ImageReadMode.RGB))
        except Exception:
            _TV_JPEG.append(None)
    return _TV_JPEG[0]


def _finish(cur: dict, url: str) -> RawSample:
    key = cur["__key__"]
    if "json" not in cur:
        raise DataError(f"{url}: sample {key!r} has no .json entry (corrupt shard)")
    try:
        meta = json.loads(cur["json"])
    except Exception:
        raise DataError(f"{url}: sample {key!r}: invalid JSON (corrupt shard)") from None
    n = int(meta.get("num_frames", 0))
    if meta.get("frame_format") == "npy":
        if "frames.npy" not in cur:
            raise DataError(f"{url}: sample {key!r} has no frames.npy entry (corrupt shard)")
        return RawSample(meta, None, cur["frames.npy"], url)
    fmt = meta.get("frame_format", "jpg")
    frames = []
    for i in range(n):
        name = f"{i:03d}.{fmt}"
        if name not in cur:
            raise DataError(f"{url}: sample {key!r} lacks frame entry {key}.{name} (truncated or corrupt shard)")
        frames.append(cur[name])
    return RawSample(meta, frames, None, url)


def iter_shard(url: str, *, expected_sha256: str | None = None) -> Iterator[RawSample]:
    """Stream the samples of one shard URL (local path, file:// or s3://), through webdataset's opener
    and tar iterator. Raises DataError naming the URL on a truncated/corrupt shard or a sha256 mismatch
    (checked at the end of the shard, when ``expected_sha256`` is given)."""
    import importlib

    from webdataset.tariterators import base_plus_ext, tar_file_iterator

    storage.register_webdataset_opener()
    wgopen = importlib.import_module("webdataset.gopen")
    try:
        stream = wgopen.gopen(url, "rb")
    except StorageError:
        raise
    except Exception as exc:
        raise DataError(f"{url}: cannot open shard: {exc}") from None
    hr = _HashingReader(stream)
    buffered = io.BufferedReader(hr, buffer_size=1 << 20)
    cur: dict | None = None
    try:
        try:
            for entry in tar_file_iterator(buffered):
                prefix, suffix = base_plus_ext(entry["fname"])
                if prefix is None:
                    continue
                if cur is None or cur["__key__"] != prefix:
                    if cur is not None:
                        yield _finish(cur, url)
                    cur = {"__key__": prefix}
                cur[suffix.lower()] = entry["data"]
        except DataError:
            raise
        except StorageError as exc:
            raise DataError(f"{url}: storage error while reading the shard: {exc}") from None
        except Exception as exc:
            raise DataError(f"{url}: truncated or corrupt shard: {type(exc).__name__}: {exc}") from None
        if expected_sha256 is not None:
            buffered.read()
            hr.drain()
            if hr.h.hexdigest() != expected_sha256:
                raise DataError(
                    f"{url}: sha256 {hr.h.hexdigest()[:16]}... does not match the manifest's "
                    f"{expected_sha256[:16]}... (corrupt or replaced shard)"
                )
        if cur is not None:
            yield _finish(cur, url)
    finally:
        with contextlib.suppress(Exception):
            buffered.close()


def iter_shard_safe(url: str, on_error: str = "raise", expected_sha256: str | None = None) -> Iterator[RawSample]:
    """:func:`iter_shard` with the loader's error policy: ``raise`` (default) or ``skip`` (warn and go on
    with the next shard; samples already read from the broken shard are kept)."""
    try:
        yield from iter_shard(url, expected_sha256=expected_sha256)
    except DataError as exc:
        if on_error != "skip":
            raise
        warnings.warn(f"skipping the rest of shard: {exc}", RuntimeWarning, stacklevel=2)
