"""Parsers for the five benchmarks' annotation files exactly as users download them (CLIP4Clip layout).

Each parser takes the card and the annotations folder and returns, per split, a list of
:class:`VideoItem` (video id, video file name hint, time span, captions). Conventions:

- One item per VIDEO with all of its captions (MSR-VTT train: the ~20 captions of each of the 9k videos;
  the loader expands them into one pair per caption, so frames are stored once).
- MSR-VTT test (1k-A): the one JSFUSION sentence per video. MSVD: every caption of every video (the
  multi-caption protocol). LSMDC: one sentence per clip; clip ids map to clip files.
- DiDeMo and ActivityNet: all sentences of a video joined (with spaces, in annotation order) into one
  paragraph over the whole video. DiDeMo's span is [0, 31) s as in CLIP4Clip (annotations cover the
  first 30 s); ActivityNet's is [0, ceil(duration)).

Video files are found by :class:`VideoIndex`: the videos folder is walked once, and an item's file is
looked up by its ``file_hint`` (exact file name), then by stem, with and without ActivityNet's ``v_``
prefix, with any video extension.

Bad annotation files raise :class:`~vtrlab.errors.DataError` naming the file and the line or key.
"""

from __future__ import annotations

import csv
import json
import math
import os
import pickle
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from vtrlab.data.card import DatasetCard
from vtrlab.errors import ConfigError, DataError

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".3gp", ".flv", ".ogv")


@dataclass
class VideoItem:
    """One video (or clip) of a split with all its captions.

    ``start``/``end`` (seconds, end exclusive; None = from the beginning / to the end) select the part of
    the file that is decoded. ``meta`` holds extra annotation fields kept in the shard's JSON.
    """

    video_id: str
    captions: list[str]
    file_hint: str | None = None
    start: float | None = None
    end: float | None = None
    meta: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "video_id": self.video_id,
            "captions": list(self.captions),
            "file_hint": self.file_hint,
            "start": self.start,
            "end": self.end,
            "meta": dict(self.meta),
        }

    @classmethod
    def from_dict(cls, d: dict) -> VideoItem:
        return cls(**d)


Parsed = dict[str, list[VideoItem]]


def _ann(card: DatasetCard, ann_dir: Path, role: str) -> Path:
    name = card.annotations.get(role)
    if name is None:
        raise ConfigError(f"card {card.name!r}: annotations.{role} is missing (the {card.name} parser needs it)")
    p = ann_dir / name
    if not p.is_file():
        raise DataError(f"{p}: annotation file not found (card {card.name}, annotations.{role})")
    return p


def _load_json(p: Path):
    try:
        with open(p, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as exc:
        raise DataError(f"{p}: line {exc.lineno}: not valid JSON: {exc.msg}") from None


def _read_id_list(p: Path) -> list[str]:
    out = []
    with open(p, encoding="utf-8") as f:
        for line in f:
            s = line.strip()
            if s:
                out.append(s)
    return out


def _csv_rows(p: Path, required: list[str]) -> list[tuple[int, dict]]:
    """Rows of a comma-separated file with a header, with their 1-based line numbers."""
    with open(p, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        missing = [c for c in required if c not in header]
        if missing:
            raise DataError(f"{p}: line 1: missing column(s) {missing} (header has {header})")
        rows = []
        for row in reader:
            line = reader.line_num
            for c in required:
                if row.get(c) is None or row.get(c) == "":
                    raise DataError(f"{p}: line {line}: empty or missing value in column {c!r}")
            rows.append((line, row))
        return rows


def _get(d: dict, key: str, where: str):
    if not isinstance(d, dict) or key not in d:
        raise DataError(f"{where}: missing key {key!r}")
    return d[key]


# ------------------------------------------------------------------------------------------------
# MSR-VTT
# ------------------------------------------------------------------------------------------------


def parse_msrvtt(card: DatasetCard, ann_dir: Path, splits: list[str]) -> Parsed:
    out: Parsed = {}
    if "train" in splits:
        data_p = _ann(card, ann_dir, "data")
        train_p = _ann(card, ann_dir, "train")
        train_ids = [row["video_id"] for _, row in _csv_rows(train_p, ["video_id"])]
        data = _load_json(data_p)
        sentences = _get(data, "sentences", str(data_p))
        caps: dict[str, list[str]] = {}
        for i, s in enumerate(sentences):
            where = f"{data_p}: sentences[{i}]"
            vid = _get(s, "video_id", where)
            caps.setdefault(str(vid), []).append(str(_get(s, "caption", where)).strip())
        items = []
        for vid in train_ids:
            if vid not in caps:
                raise DataError(f"{train_p}: video_id {vid!r} has no caption in {data_p} (key 'sentences')")
            items.append(VideoItem(vid, caps[vid], file_hint=f"{vid}.mp4"))
        out["train"] = items
    if "test" in splits:
        test_p = _ann(card, ann_dir, "test")
        items = []
        seen: dict[str, VideoItem] = {}
        for line, row in _csv_rows(test_p, ["video_id", "sentence"]):
            vid = row["video_id"]
            if vid in seen:  # not in 1k-A, but keep every sentence if a user's file repeats a video
                seen[vid].captions.append(row["sentence"].strip())
                continue
            it = VideoItem(vid, [row["sentence"].strip()], file_hint=f"{vid}.mp4", meta={"line": line})
            seen[vid] = it
            items.append(it)
        out["test"] = items
    return out


# ------------------------------------------------------------------------------------------------
# MSVD
# ------------------------------------------------------------------------------------------------


def parse_msvd(card: DatasetCard, ann_dir: Path, splits: list[str]) -> Parsed:
    cap_p = _ann(card, ann_dir, "captions")
    try:
        with open(cap_p, "rb") as f:
            raw = pickle.load(f)
    except Exception as exc:
        raise DataError(f"{cap_p}: cannot read the caption pickle: {exc}") from None
    if not isinstance(raw, dict):
        raise DataError(f"{cap_p}: expected a dict video_id -> list of token lists, got {type(raw).__name__}")
    out: Parsed = {}
    for split in splits:
        list_p = _ann(card, ann_dir, split)
        items = []
        for n, vid in enumerate(_read_id_list(list_p), start=1):
            if vid not in raw:
                raise DataError(f"{list_p}: line {n}: video id {vid!r} is not a key of {cap_p}")
            caps = []
            for j, toks in enumerate(raw[vid]):
                if isinstance(toks, str):
                    caps.append(toks.strip())
                elif isinstance(toks, list | tuple):
                    caps.append(" ".join(str(t) for t in toks))
                else:
                    raise DataError(f"{cap_p}: key {vid!r}[{j}]: expected a list of tokens")
            if not caps:
                raise DataError(f"{cap_p}: key {vid!r}: no captions")
            items.append(VideoItem(vid, caps, file_hint=f"{vid}.avi"))
        out[split] = items
    return out


# ------------------------------------------------------------------------------------------------
# LSMDC
# ------------------------------------------------------------------------------------------------


def parse_lsmdc(card: DatasetCard, ann_dir: Path, splits: list[str]) -> Parsed:
    out: Parsed = {}
    for split in splits:
        p = _ann(card, ann_dir, split)
        items: list[VideoItem] = []
        seen: dict[str, VideoItem] = {}
        with open(p, encoding="utf-8") as f:
            for n, line in enumerate(f, start=1):
                line = line.rstrip("\r\n")
                if not line.strip():
                    continue
                cols = line.split("\t")
                if len(cols) != 6:
                    raise DataError(
                        f"{p}: line {n}: expected 6 tab-separated columns (clip id, start/end aligned, "
                        f"start/end extracted, sentence), got {len(cols)}"
                    )
                clip_id, s_al, e_al, s_ex, e_ex, sentence = (c.strip() for c in cols)
                if not clip_id or not sentence:
                    raise DataError(f"{p}: line {n}: empty clip id or sentence")
                if clip_id in seen:
                    seen[clip_id].captions.append(sentence)
                    continue
                movie = clip_id.rsplit("_", 1)[0]
                it = VideoItem(
                    clip_id,
                    [sentence],
                    file_hint=f"{movie}/{clip_id}.avi",
                    meta={"aligned": [s_al, e_al], "extracted": [s_ex, e_ex]},
                )
                seen[clip_id] = it
                items.append(it)
        out[split] = items
    return out


# ------------------------------------------------------------------------------------------------
# DiDeMo
# ------------------------------------------------------------------------------------------------

DIDEMO_END_S = 31.0  # CLIP4Clip: annotations cover the first 30 s (5-s chunks); the clip is [0, 31) s


def parse_didemo(card: DatasetCard, ann_dir: Path, splits: list[str]) -> Parsed:
    out: Parsed = {}
    for split in splits:
        data_p = _ann(card, ann_dir, split)
        list_p = _ann(card, ann_dir, f"{split}_list")
        ids = _read_id_list(list_p)
        wanted = set(ids)
        data = _load_json(data_p)
        if not isinstance(data, list):
            raise DataError(f"{data_p}: expected a JSON list of {{video, description, times}} entries")
        texts: dict[str, list[str]] = {}
        times: dict[str, list] = {}
        for i, entry in enumerate(data):
            where = f"{data_p}: entry [{i}]"
            video = str(_get(entry, "video", where))
            desc = str(_get(entry, "description", where)).strip()
            t = _get(entry, "times", where)
            if video not in wanted:
                continue
            texts.setdefault(video, []).append(desc)
            times.setdefault(video, []).append(t)
        items = []
        for n, vid in enumerate(ids, start=1):
            if vid not in texts:
                raise DataError(f"{list_p}: line {n}: video {vid!r} has no description in {data_p}")
            items.append(
                VideoItem(
                    vid,
                    [" ".join(texts[vid])],
                    file_hint=vid,
                    start=0.0,
                    end=DIDEMO_END_S,
                    meta={"sentences": texts[vid], "times": times[vid]},
                )
            )
        out[split] = items
    return out


# ------------------------------------------------------------------------------------------------
# ActivityNet Captions
# ------------------------------------------------------------------------------------------------


def parse_activitynet(card: DatasetCard, ann_dir: Path, splits: list[str]) -> Parsed:
    out: Parsed = {}
    for split in splits:
        data_p = _ann(card, ann_dir, split)
        ids_p = _ann(card, ann_dir, f"{split}_ids")
        ids = _load_json(ids_p)
        if not isinstance(ids, list):
            raise DataError(f"{ids_p}: expected a JSON list of video ids ('v_...')")
        data = _load_json(data_p)
        if not isinstance(data, dict):
            raise DataError(f"{data_p}: expected a JSON object video id -> {{duration, timestamps, sentences}}")
        items = []
        for i, vid in enumerate(ids):
            vid = str(vid)
            if vid not in data:
                raise DataError(f"{ids_p}: entry [{i}]: video id {vid!r} is not a key of {data_p}")
            entry = data[vid]
            where = f"{data_p}: key {vid!r}"
            sentences = _get(entry, "sentences", where)
            duration = _get(entry, "duration", where)
            if not isinstance(sentences, list) or not sentences:
                raise DataError(f"{where}.sentences: expected a non-empty list of sentences")
            try:
                end = float(math.ceil(float(duration)))
            except (TypeError, ValueError):
                raise DataError(f"{where}.duration: expected a number, got {duration!r}") from None
            sents = [str(s).strip() for s in sentences]
            items.append(
                VideoItem(
                    vid,
                    [" ".join(sents)],
                    file_hint=vid,
                    start=0.0,
                    end=end,
                    meta={"duration": duration, "timestamps": entry.get("timestamps"), "sentences": sents},
                )
            )
        out[split] = items
    return out


PARSERS: dict[str, Callable[[DatasetCard, Path, list[str]], Parsed]] = {
    "msrvtt": parse_msrvtt,
    "msvd": parse_msvd,
    "lsmdc": parse_lsmdc,
    "didemo": parse_didemo,
    "activitynet": parse_activitynet,
}


def parse_annotations(card: DatasetCard, annotations: str | os.PathLike, splits: list[str] | None = None) -> Parsed:
    """Per split, the list of :class:`VideoItem` of a benchmark (``splits`` default: all of the card's)."""
    if card.name not in PARSERS:
        raise ConfigError(f"no annotation parser for benchmark {card.name!r} (known: {', '.join(PARSERS)})")
    splits = list(splits or card.splits)
    unknown = [s for s in splits if s not in card.splits]
    if unknown:
        raise ConfigError(f"card {card.name!r}: unknown split(s) {unknown}; the card has {sorted(card.splits)}")
    ann_dir = Path(annotations)
    if not ann_dir.is_dir():
        raise DataError(f"{ann_dir}: annotations folder not found")
    return PARSERS[card.name](card, ann_dir, splits)


class VideoIndex:
    """The video files under a folder, looked up by file name or stem (walks the folder once)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).expanduser().resolve()  # absolute: Ray workers may run in another cwd
        if not self.root.is_dir():
            raise DataError(f"{self.root}: videos folder not found")
        self.by_rel: dict[str, str] = {}
        self.by_name: dict[str, str] = {}
        self.by_stem: dict[str, str] = {}
        for dirpath, _dirs, files in os.walk(self.root):
            for fn in sorted(files):
                full = os.path.join(dirpath, fn)
                rel = os.path.relpath(full, self.root).replace(os.sep, "/")
                self.by_rel[rel] = full
                self.by_name.setdefault(fn, full)
                stem, ext = os.path.splitext(fn)
                if ext.lower() in VIDEO_EXTENSIONS:
                    self.by_stem.setdefault(stem, full)

    def find(self, item: VideoItem) -> str | None:
        """The path of ``item``'s video file, or None."""
        cands = []
        if item.file_hint:
            cands.append(item.file_hint)
        cands.append(item.video_id)
        for c in cands:
            if c in self.by_rel:
                return self.by_rel[c]
            name = c.rsplit("/", 1)[-1]
            if name in self.by_name and os.path.splitext(name)[1].lower() in VIDEO_EXTENSIONS:
                return self.by_name[name]
        stems = []
        for c in cands:
            name = c.rsplit("/", 1)[-1]
            stems.append(name)
            base, ext = os.path.splitext(name)
            if ext.lower() in VIDEO_EXTENSIONS:
                stems.append(base)
        for s in list(stems):
            if s.startswith("v_"):
                stems.append(s[2:])
        for s in stems:
            if s in self.by_stem:
                return self.by_stem[s]
        return None
