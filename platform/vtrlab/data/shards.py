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

:func:`read_manifest` validates it (:class:`Manifest`): keys and types, counts that add up, shard paths
relative and inside the dataset folder (no ``..``, absolute path, URL or link out of it), and a format
version this vtrlab reads; a mismatch is a DataError naming the manifest's URL and the key.
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
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError

from vtrlab import storage
from vtrlab.config import shown
from vtrlab.data.video import decode_frame, decode_npy, encode_frame, encode_npy
from vtrlab.errors import DataError, StorageError

FORMAT_NAME = "vtrlab-shards"
FORMAT_VERSION = 1
FORMAT = f"{FORMAT_NAME}/{FORMAT_VERSION}"
MANIFEST = "manifest.json"
SHA256_HEX = r"^[0-9a-f]{64}$"


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


class _Entry(BaseModel):
    """Keys a manifest section must have (typed); other keys are kept as they are."""

    model_config = ConfigDict(extra="allow")


class ShardEntry(_Entry):
    path: StrictStr
    samples: StrictInt = Field(ge=1)
    videos: StrictInt = Field(ge=0)
    captions: StrictInt = Field(ge=0)
    bytes: StrictInt = Field(ge=0)
    sha256: StrictStr = Field(pattern=SHA256_HEX)


class SkippedEntry(_Entry):
    video_id: StrictStr
    reason: StrictStr
    captions: list[StrictStr] | None = None


class ExpectedCounts(_Entry):
    videos: StrictInt = Field(ge=0)
    captions: StrictInt = Field(ge=0)


class SplitEntry(_Entry):
    protocol: StrictStr
    samples: StrictInt = Field(ge=0)
    videos: StrictInt = Field(ge=0)
    captions: StrictInt = Field(ge=0)
    bytes: StrictInt = Field(default=0, ge=0)
    expected: ExpectedCounts | None = None
    skipped: list[SkippedEntry] = Field(default_factory=list)
    shards: list[ShardEntry]


class Manifest(_Entry):
    """A dataset's ``manifest.json`` (see the module docstring); :func:`read_manifest` validates against it."""

    format: StrictStr
    name: StrictStr
    version: StrictStr
    options: dict
    card: dict = Field(default_factory=dict)
    splits: dict[StrictStr, SplitEntry]


def _manifest_problem(err: ValidationError) -> str:
    """The first problems of a validation error, on one line: ``key.path: message (got value)``."""
    parts = []
    for item in err.errors()[:3]:
        key = ".".join(str(p) for p in item["loc"]) or "<root>"
        got = "" if item["type"] == "missing" else f" (got {shown(item.get('input'), 120)})"
        parts.append(f"{key}: {item['msg']}{got}")
    more = f"; and {len(err.errors()) - 3} more" if len(err.errors()) > 3 else ""
    return "; ".join(parts) + more


def check_shard_path(path: str, where: str) -> str:
    """``path`` if it is a relative path inside the dataset folder (no ``..``, no absolute path, no URL);
    else a DataError naming ``where`` and the path."""
    parts = path.split("/")
    if (
        not path
        or path.startswith(("/", "\\", "~"))
        or "\\" in path
        or "://" in path
        or (len(path) > 1 and path[1] == ":")
        or any(p in ("", ".", "..") for p in parts)
        or any(ord(c) < 32 for c in path)
    ):
        raise DataError(f"{where}: {shown(path)}: expected a relative path inside the dataset folder")
    return path


def _check_local_confinement(url: str, man: dict, source: str) -> None:
    """Shard files of a local dataset resolve (links followed) inside its folder."""
    scheme, _, root = storage.split_url(url)
    if scheme != "file":
        return
    base = Path(root).expanduser().resolve()
    for split, info in man["splits"].items():
        for i, sh in enumerate(info["shards"]):
            real = (base / sh["path"]).resolve()
            if not real.is_relative_to(base):
                raise DataError(
                    f"{source}: splits.{split}.shards.{i}.path: {shown(sh['path'])} resolves to {shown(str(real))}, "
                    "outside the dataset folder (a link out of it)"
                )


def validate_manifest(man: object, source: str, url: str | None = None) -> dict:
    """``man`` checked against :class:`Manifest` (format, keys and types, shard paths inside the dataset
    folder); a mismatch is a DataError naming ``source`` and the key. Returns ``man``."""
    if not isinstance(man, dict):
        raise DataError(f"{source}: expected a JSON object, got {type(man).__name__}")
    fmt = man.get("format")
    if not isinstance(fmt, str) or not fmt.startswith(f"{FORMAT_NAME}/"):
        raise DataError(f"{source}: format: {shown(fmt)}: not a vtrlab dataset manifest (expected {FORMAT!r})")
    version = fmt.split("/", 1)[1]
    if not version.isdigit():
        raise DataError(f"{source}: format: {shown(fmt)}: expected {FORMAT!r}")
    if int(version) > FORMAT_VERSION:
        raise DataError(
            f"{source}: format: {shown(fmt)}: manifest format version {version} is newer than this vtrlab reads "
            f"({FORMAT_VERSION}); upgrade vtrlab"
        )
    if fmt != FORMAT:
        raise DataError(f"{source}: format: {shown(fmt)}: expected {FORMAT!r}")
    try:
        Manifest.model_validate(man)
    except ValidationError as err:
        raise DataError(f"{source}: {_manifest_problem(err)}") from None
    for split, info in man["splits"].items():
        for i, sh in enumerate(info["shards"]):
            check_shard_path(sh["path"], f"{source}: splits.{split}.shards.{i}.path")
        for key in ("samples", "videos", "captions"):
            held = sum(sh[key] for sh in info["shards"])
            if info[key] != held:
                raise DataError(f"{source}: splits.{split}.{key}: {info[key]}, but its shards hold {held}")
    if url is not None:
        _check_local_confinement(url, man, source)
    return man


def read_manifest(url: str) -> dict:
    """The manifest of the dataset at ``url``, validated (:func:`validate_manifest`); DataError naming the
    manifest's URL if there is none or it is invalid."""
    store = storage.open_store(url)
    source = storage.join_url(url, MANIFEST)
    try:
        text = store.read_text(MANIFEST)
    except StorageError as exc:
        raise DataError(
            f"{source}: no dataset manifest (build it with `vtrlab data build` or `vtrlab data synth`): {exc}"
        ) from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{source}: not UTF-8 text (byte {exc.start})") from None
    try:
        man = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{source}: line {exc.lineno}: invalid JSON: {exc.msg}") from None
    except RecursionError:
        raise DataError(f"{source}: invalid JSON: nested too deeply") from None
    return validate_manifest(man, source, url)


def manifest_split(man: dict, split: str, url: str = "") -> dict:
    splits = man.get("splits") or {}
    if split not in splits:
        raise DataError(f"{url or man.get('name')}: split {shown(split)} not in the manifest (has {sorted(splits)})")
    return splits[split]


def verify_shard(url: str, shard: dict) -> None:
    """Read the shard at ``url`` to its end: its sha256 and sample count must be the manifest entry's
    (``shard``); else a DataError naming the URL."""
    count = sum(1 for _ in iter_shard(url, expected_sha256=shard["sha256"]))
    if count != shard["samples"]:
        raise DataError(
            f"{url}: the shard holds {count} samples, the manifest says {shard['samples']} "
            "(truncated or replaced since the build; rebuild it)"
        )


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


def _check_sample_meta(meta: object, where: str) -> None:
    """A sample's JSON: an object with a string ``video_id``, ``captions`` a list of strings, ``num_frames``
    a count and a known ``frame_format``; else a DataError naming ``where`` and the key."""
    if not isinstance(meta, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(meta).__name__} (corrupt shard)")
    n = meta.get("num_frames", 0)
    checks = (
        ("video_id", isinstance(meta.get("video_id"), str), "a string"),
        ("captions", isinstance(meta.get("captions"), list) and all(isinstance(c, str) for c in meta["captions"]),
         "a list of strings"),
        ("num_frames", isinstance(n, int) and not isinstance(n, bool) and 0 <= n <= 100_000, "a frame count"),
        ("frame_format", meta.get("frame_format", "jpg") in ("jpg", "png", "npy"), "jpg, png or npy"),
    )  # fmt: skip
    for key, ok, expected in checks:
        if not ok:
            raise DataError(f"{where}: {key}: expected {expected}, got {shown(meta.get(key), 120)} (corrupt shard)")
    meta.setdefault("num_frames", 0)


def _finish(cur: dict, url: str) -> RawSample:
    key = cur["__key__"]
    if "json" not in cur:
        raise DataError(f"{url}: sample {key!r} has no .json entry (corrupt shard)")
    try:
        meta = json.loads(cur["json"])
    except Exception:
        raise DataError(f"{url}: sample {key!r}: invalid JSON (corrupt shard)") from None
    _check_sample_meta(meta, f"{url}: sample {key!r}")
    n = meta["num_frames"]
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
