"""``vtrlab data build``: annotations + videos -> WebDataset shards + manifest, as Ray tasks.

Plan: parse the annotations (:mod:`vtrlab.data.parsers`), find every video file, and cut each split
into shards of ``shard_samples`` videos in annotation order. Each shard is one task (Ray task, one CPU;
or in-process with ``executor="local"``): decode with PyAV as CLIP4Clip samples (1 fps over
``[start, end]``, end inclusive, then ``linspace(0, n - 1, num_frames, dtype=int)``, plus extra frames up to
``stored_frames`` when asked for training jitter; each frame resized and centre-cropped as it is decoded:
:mod:`vtrlab.data.video`), encode the frames, write the tar to a local temp file, upload it under a
temporary key, commit it, then commit its stats sidecar. A rerun reads the sidecars and skips every
shard whose sidecar matches its plan hash (same videos, captions, spans and frame options), so an
interrupted build resumes where it stopped. The manifest is committed last.

A build of some splits (``splits=[...]``) keeps the other splits of an earlier build at the same URL
with the same options in the manifest. With a multi-node Ray cluster every node must see the videos
folder at the same path (a shared file system); the shards go to ``out`` from whichever node runs the task.

The shard tasks run on the task runner the caller gives (:mod:`vtrlab.tasks`): ``executor="ray"`` (Ray
tasks: ``RAY_ADDRESS`` when set, else a local Ray with all the machine's cores, or the Ray the caller
initialised), ``"local"`` (in this process) or any :class:`~vtrlab.tasks.TaskRunner`. ``vtrlab.data``
imports nothing of Ray itself.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from vtrlab import storage
from vtrlab.config import shown
from vtrlab.data.card import DatasetCard, load_card
from vtrlab.data.frames import SAMPLING, frames_manifest
from vtrlab.data.parsers import VideoIndex, VideoItem, parse_annotations
from vtrlab.data.shards import (
    FORMAT,
    MANIFEST,
    ClipRecord,
    Skip,
    sha256_json,
    shard_key,
    sidecar_key,
    validate_manifest,
    write_shard,
)
from vtrlab.data.video import decode_clip
from vtrlab.errors import ConfigError, DataError, StorageError
from vtrlab.tasks import EXECUTORS, TaskRunner, local_runner, runner_for

BUILD_OPTION_KEYS = (
    "num_frames",
    "stored_frames",
    "image_size",
    "fps",
    "frame_format",
    "jpeg_quality",
    "shard_samples",
)

# the range of each build option (inclusive; None: unbounded), as the card allows it
OPTION_RANGES: dict[str, tuple[float, float | None]] = {
    "num_frames": (1, 256),
    "stored_frames": (1, 512),
    "image_size": (8, 1024),
    "jpeg_quality": (10, 100),
    "shard_samples": (1, None),
}


def _option_name(key: str) -> str:
    return f"--{key.replace('_', '-')}"


def _check_option(key: str, value: object) -> None:
    """A build option's value in its range; else a ConfigError naming the option (as the CLI spells it)."""
    if key == "fps":
        ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value > 0
        if not ok:
            raise ConfigError(f"{_option_name(key)} {shown(value)}: expected a frame rate > 0")
        return
    if key not in OPTION_RANGES or (key == "stored_frames" and value is None):
        return
    lo, hi = OPTION_RANGES[key]
    if not isinstance(value, int) or isinstance(value, bool) or value < lo or (hi is not None and value > hi):
        span = f"{lo}..{hi}" if hi is not None else f">= {lo}"
        raise ConfigError(f"{_option_name(key)} {shown(value)}: expected an integer {span}")


def build_options(card: DatasetCard, **overrides) -> dict:
    """The frame/shard options of a build: the card's values, overridden by non-None ``overrides``."""
    opts = {k: getattr(card, k) for k in BUILD_OPTION_KEYS}
    for k, v in overrides.items():
        if k not in BUILD_OPTION_KEYS:
            raise ConfigError(f"unknown build option {k!r} (known: {', '.join(BUILD_OPTION_KEYS)})")
        if v is not None:
            _check_option(k, v)
            opts[k] = v
    if opts["frame_format"] not in ("jpg", "png", "npy"):
        raise ConfigError(f"--frame-format {shown(opts['frame_format'])}: expected jpg, png or npy")
    if opts["stored_frames"] is not None and opts["stored_frames"] < opts["num_frames"]:
        raise ConfigError(
            f"stored_frames {opts['stored_frames']} < num_frames {opts['num_frames']} (--stored-frames, "
            "--num-frames): a build keeps CLIP4Clip's "
            "num_frames frames of each clip (plus extras up to stored_frames); set num_frames to keep fewer"
        )
    if opts["stored_frames"] == opts["num_frames"]:
        opts["stored_frames"] = None  # CLIP4Clip's frames exactly: nothing extra to store
    opts["sampling"] = SAMPLING  # in the plan hash: shards sampled by another rule are rebuilt, not resumed
    return opts


def _decode_records(tasks: list[dict], opts: dict) -> Iterator[ClipRecord | Skip]:
    for t in tasks:
        try:
            clip = decode_clip(
                t["path"],
                num_frames=opts["num_frames"],
                stored_frames=opts["stored_frames"],
                size=opts["image_size"],
                fps=opts["fps"],
                start=t["start"],
                end=t["end"],
                threads=opts.get("decode_threads", 0),
            )
        except DataError as exc:
            yield Skip(t["video_id"], str(exc), t["captions"])
            continue
        meta = {**(t["meta"] or {}), "sampling": clip.sampling_meta()}
        yield ClipRecord(
            t["video_id"], t["captions"], clip.frames, t["start"], t["end"], os.path.basename(t["path"]), meta
        )


def build_shard_task(store_spec: dict, opts: dict, shard: dict) -> dict:
    """One shard: decode its videos and write it (a task of the build's runner)."""
    store = storage.open_store(store_spec)
    return write_shard(
        store,
        shard["split"],
        shard["index"],
        _decode_records(shard["videos"], opts),
        first_sample_index=shard["first_sample_index"],
        frame_format=opts["frame_format"],
        jpeg_quality=opts["jpeg_quality"],
        plan_hash=shard["plan_hash"],
    )


def plan_shards(
    card: DatasetCard,
    parsed: dict[str, list[VideoItem]],
    videos: str | os.PathLike,
    opts: dict,
    allow_links: bool = False,
) -> tuple[list[dict], dict[str, list[dict]]]:
    """(shard tasks, per-split skipped videos whose files are missing)."""
    index = VideoIndex(videos, allow_links=allow_links)
    shards: list[dict] = []
    missing: dict[str, list[dict]] = {}
    for split, items in parsed.items():
        found = []
        missing[split] = []
        for it in items:
            path = index.find(it)
            if path is None:
                missing[split].append(
                    {
                        "video_id": it.video_id,
                        "reason": f"video file not found under {videos} (looked for "
                        f"{it.file_hint or it.video_id} and its stem with any video extension)",
                        "captions": it.captions,
                    }
                )
                continue
            found.append(
                {
                    "video_id": it.video_id,
                    "captions": it.captions,
                    "start": it.start,
                    "end": it.end,
                    "meta": it.meta,
                    "path": path,
                    "file_size": os.path.getsize(path),
                }
            )
        n = opts["shard_samples"]
        for si, lo in enumerate(range(0, len(found), n)):
            chunk = found[lo : lo + n]
            plan = {
                "opts": opts,
                "videos": [[v["video_id"], v["captions"], v["start"], v["end"], v["file_size"]] for v in chunk],
            }
            shards.append(
                {
                    "split": split,
                    "index": si,
                    "first_sample_index": lo,
                    "videos": chunk,
                    "plan_hash": sha256_json(plan),
                }
            )
    return shards, missing


def assemble_manifest(
    name: str,
    card: DatasetCard,
    opts: dict,
    split_names: list[str],
    stats: list[dict],
    missing: dict[str, list[dict]],
    protocols: dict[str, str] | None = None,
    expected: dict[str, dict] | None = None,
    extra: dict | None = None,
) -> dict:
    """The manifest dict from the shard sidecars (see :mod:`vtrlab.data.shards`)."""
    splits: dict[str, dict] = {}
    for split in split_names:
        ss = sorted((s for s in stats if s["split"] == split), key=lambda s: s["index"])
        shards = [
            {k: s[k] for k in ("path", "samples", "videos", "captions", "bytes", "sha256")} for s in ss if s["samples"]
        ]
        skipped = list(missing.get(split, [])) + [sk for s in ss for sk in s["skipped"]]
        spec = card.splits.get(split)
        exp = (expected or {}).get(split) or ({"videos": spec.videos, "captions": spec.captions} if spec else None)
        splits[split] = {
            "protocol": (protocols or {}).get(split) or card.split_protocol(split),
            "samples": sum(s["samples"] for s in shards),
            "videos": sum(s["videos"] for s in shards),
            "captions": sum(s["captions"] for s in shards),
            "bytes": sum(s["bytes"] for s in shards),
            "expected": exp,
            "skipped": skipped,
            "shards": shards,
        }
    version = sha256_json({"opts": opts, "splits": {k: [s["sha256"] for s in v["shards"]] for k, v in splits.items()}})
    man = {
        "format": FORMAT,
        "name": name,
        "version": version,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "card": card.model_dump(mode="json"),
        "options": opts,
        "splits": splits,
    }
    if extra:
        man.update(extra)
    return man


def check_out(out: str) -> None:
    """A local destination must be a folder, or a path whose first existing parent is one; else a
    ConfigError naming ``--out`` (checked before anything is written)."""
    scheme, _, rest = storage.split_url(out)
    if scheme != "file":
        return
    p = Path(rest).expanduser()
    for q in (p, *p.parents):
        if q.exists() or q.is_symlink():
            if not q.is_dir():
                what = "is a file" if q == p else f"is inside {q}, a file"
                raise ConfigError(f"--out {shown(out)}: {what}; expected a folder for the dataset (or one to create)")
            return


def _check_runner(executor: str | TaskRunner, num_cpus: int | None) -> None:
    if isinstance(executor, str) and executor not in EXECUTORS:
        raise ConfigError(f"--executor {shown(executor)}: expected {' or '.join(EXECUTORS)}")
    if num_cpus is not None and (not isinstance(num_cpus, int) or num_cpus < 1):
        raise ConfigError(f"--num-cpus {shown(num_cpus)}: expected an integer >= 1")


def _sha256_of(store: storage.Store, key: str) -> str:
    h = hashlib.sha256()
    with store.open_read(key) as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _intact(store: storage.Store, key: str, size: object, sha256: object) -> bool:
    """The object at ``key`` has ``size`` bytes and sha256 ``sha256`` (read to its end)."""
    try:
        return store.size(key) == size and _sha256_of(store, key) == sha256
    except (StorageError, OSError):
        return False


def _resumable(store: storage.Store, st: object, shard: dict) -> bool:
    """A sidecar ``st`` left by an earlier build describes ``shard`` as planned now, and its tar (if any) is
    the one it describes: the same size and sha256, read again (a shard corrupted since is rebuilt)."""
    if not isinstance(st, dict) or st.get("plan_hash") != shard["plan_hash"]:
        return False
    if st.get("split") != shard["split"] or st.get("index") != shard["index"]:
        return False
    counts = [st.get(k) for k in ("samples", "videos", "captions", "bytes")]
    if not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts):
        return False
    skipped = st.get("skipped")
    if not isinstance(skipped, list) or not all(
        isinstance(sk, dict) and isinstance(sk.get("video_id"), str) and isinstance(sk.get("reason"), str)
        for sk in skipped
    ):
        return False
    if st.get("path") is None:
        return st["samples"] == 0
    if st["path"] != shard_key(shard["split"], shard["index"]) or st["samples"] < 1:
        return False
    return _intact(store, st["path"], st["bytes"], st.get("sha256"))


def _refuse_empty_splits(card: DatasetCard, kept: dict[str, int], skipped: dict[str, list[dict]], videos) -> None:
    """A split the card expects videos of, of which the build keeps none, is a DataError (nothing committed)."""
    for split, n in kept.items():
        spec = card.splits.get(split)
        if n or spec is None or spec.videos == 0:
            continue
        gone = skipped.get(split) or []
        first = f"; first: {gone[0]['video_id']}: {gone[0]['reason']}" if gone else ""
        raise DataError(
            _one_line(
                f"{videos}: split {split!r}: no video kept (the card expects {spec.videos}; "
                f"{len(gone)} skipped{first}); nothing committed"
            )
        )


def _one_line(text: str, limit: int = 600) -> str:
    """``text`` on one line, cut after ``limit`` characters."""
    text = " ".join(text.split())
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def build(
    benchmark: str | DatasetCard,
    annotations: str | os.PathLike,
    videos: str | os.PathLike,
    out: str,
    splits: list[str] | None = None,
    *,
    executor: str | TaskRunner = "ray",
    num_cpus: int | None = None,
    progress: Callable[[dict], None] | None = None,
    strict_ids: bool = False,
    allow_links: bool = False,
    **option_overrides,
) -> dict:
    """Build a benchmark's shards and manifest at ``out`` (local path, file://, s3://); returns the manifest.

    ``option_overrides``: any of num_frames (the frames evaluation sees), stored_frames (more: extra frames
    for training jitter), image_size, fps, frame_format, jpeg_quality, shard_samples (default: the card's);
    the manifest's ``frames`` entry says what was stored. Missing or undecodable videos, and ids an id list
    names that the caption file lacks (ActivityNet, DiDeMo; an error with ``strict_ids``), are skipped and
    listed in the manifest with the reason; bad annotation files raise DataError, and so does a video file
    linking out of the videos folder unless ``allow_links``. Options, the destination,
    the annotations and the videos folder are checked before anything is written or a task started. A split
    the card expects videos of that keeps none is a DataError, and no manifest is committed.

    Resumable: shards already complete (sidecar with the same plan hash, and a tar whose size and sha256,
    read again, are the sidecar's) are not rebuilt; a shard that does not match is. Logs "resumed N of M
    shards" through ``progress`` (called with each shard's stats, plus ``{"resumed": True}`` for shards skipped).
    """
    _check_runner(executor, num_cpus)
    card = benchmark if isinstance(benchmark, DatasetCard) else load_card(benchmark)
    opts = build_options(card, **option_overrides)
    check_out(out)
    parsed = parse_annotations(card, annotations, splits, strict_ids=strict_ids)
    shards, missing = plan_shards(card, parsed, videos, opts, allow_links)
    for split, no_caption in parsed.skipped.items():  # ids without captions first, then missing files
        missing[split] = no_caption + missing.get(split, [])
    planned = {split: sum(len(s["videos"]) for s in shards if s["split"] == split) for split in parsed}
    _refuse_empty_splits(card, planned, missing, videos)
    store = storage.open_store(out)
    existing = set(store.list(""))
    # splits built earlier into the same place with the same options (``--splits`` builds) are kept
    kept = _earlier_splits(store, card.name, opts, set(parsed))
    done: list[dict] = []
    todo: list[dict] = []
    for s in shards:
        sk = sidecar_key(s["split"], s["index"])
        if sk in existing:
            try:
                st = json.loads(store.read_text(sk))
            except (StorageError, ValueError, RecursionError):  # unreadable, not UTF-8 or not JSON
                st = None
            if _resumable(store, st, s):
                done.append(st)
                if progress:
                    progress({**st, "resumed": True})
                continue
        todo.append(s)
    runner = runner_for(executor, num_cpus) if isinstance(executor, str) else executor
    # one decoder thread per task when tasks run side by side (a Ray task holds one CPU)
    task_opts = opts if runner is local_runner else {**opts, "decode_threads": 1}
    results = runner(build_shard_task, todo, (store.spec(), task_opts), progress)
    frames = frames_manifest(opts["num_frames"], opts["stored_frames"], opts["fps"], opts["image_size"])
    man = assemble_manifest(card.name, card, opts, list(parsed), done + results, missing, extra={"frames": frames})
    built = {k: man["splits"][k] for k in parsed}
    try:
        _refuse_empty_splits(
            card, {k: v["videos"] for k, v in built.items()}, {k: v["skipped"] for k, v in built.items()}, videos
        )
    except DataError:
        _discard_empty(store, out, results, existing)
        raise
    if kept:
        man["splits"] = {**kept, **man["splits"]}
        man["version"] = sha256_json(
            {"opts": opts, "splits": {k: [s["sha256"] for s in v["shards"]] for k, v in man["splits"].items()}}
        )
    man["build"] = {"shards_total": len(shards), "shards_resumed": len(done), "shards_written": len(todo)}
    validate_manifest(json.loads(json.dumps(man)), storage.join_url(out, MANIFEST), out)
    store.write_text(MANIFEST, json.dumps(man, indent=1, sort_keys=True))
    return man


def _discard_empty(store: storage.Store, out: str, results: list[dict], existing: set[str]) -> None:
    """After a refused build: the sidecars this build wrote for shards that kept no video, and the local
    folders it created that are left empty."""
    for st in results:
        if st.get("path") is None:
            key = sidecar_key(st["split"], st["index"])
            if key not in existing:
                store.delete(key)
    scheme, _, rest = storage.split_url(out)
    if scheme != "file" or existing:
        return
    root = Path(rest).expanduser()
    for d in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        if not any(d.iterdir()):
            d.rmdir()
    if root.is_dir() and not any(root.iterdir()):
        root.rmdir()


def _earlier_splits(store: storage.Store, name: str, opts: dict, built: set[str]) -> dict:
    """The splits of an earlier build at ``store`` with the same options that this build does not build. Their
    shards are read again: one whose size or sha256 is not the manifest's is a DataError naming it."""
    if not store.exists(MANIFEST):
        return {}
    try:
        old = validate_manifest(json.loads(store.read_text(MANIFEST)), store.url_for(MANIFEST), store.url)
    except (StorageError, DataError, ValueError, RecursionError):
        return {}  # not a manifest this vtrlab can keep splits of: the new one replaces it
    if old.get("name") != name or old.get("options") != opts:
        return {}
    kept = {k: v for k, v in old["splits"].items() if k not in built}
    for split, info in kept.items():
        for sh in info["shards"]:
            if not _intact(store, sh["path"], sh["bytes"], sh["sha256"]):
                raise DataError(
                    f"{store.url_for(sh['path'])}: a shard of split {split!r} (built earlier, kept in the manifest) "
                    f"does not match the manifest's size and sha256; rebuild it with --splits {split}"
                )
    return kept
