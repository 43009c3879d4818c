"""What every benchmark parser shares: :class:`VideoItem`, :class:`Parsed` and annotation file readers
whose errors (:class:`~vtrlab.errors.DataError`) name the file and the line or key.

Text files are read as UTF-8 with an optional byte-order mark (``utf-8-sig``), as files saved by
spreadsheet tools often have one.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Container, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vtrlab.config import shown
from vtrlab.data.card import DatasetCard
from vtrlab.errors import ConfigError, DataError

TEXT_ENCODING = "utf-8-sig"


@dataclass
class VideoItem:
    """One video (or clip) of a split with all its captions.

    ``start``/``end`` (seconds; None = from the beginning / to the end) select the part of the file that is
    decoded, end INCLUSIVE as CLIP4Clip decodes: a frame at each second mark start..end the video has.
    ``meta`` holds extra annotation fields kept in the shard's JSON.
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


class Parsed(dict[str, list[VideoItem]]):
    """Per split, its :class:`VideoItem` list; ``skipped``: per split, the ids an id list names that the
    caption file lacks (``{"video_id", "reason"}``), skipped as CLIP4Clip skips them."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.skipped: dict[str, list[dict]] = {}

    def skip(self, split: str, video_id: str, reason: str) -> None:
        self.skipped.setdefault(split, []).append({"video_id": video_id, "reason": reason})

    def captioned(
        self,
        split: str,
        listed: Iterable[tuple[str, str]],
        captions: Container[str],
        *,
        list_p: Path,
        data_p: Path,
        lacks: str,
        strict_ids: bool,
    ) -> Iterator[str]:
        """The video ids of an id list (``(position, id)`` pairs) that have captions, each once (CLIP4Clip takes
        the set); an id without is skipped into ``skipped`` as CLIP4Clip skips it, or with ``strict_ids`` is a
        DataError ``"<list_p>: <position>: <lacks, the id put in its {!r}> <data_p>"``."""
        seen: set[str] = set()
        for position, vid in listed:
            if vid in seen:
                continue
            seen.add(vid)
            if vid in captions:
                yield vid
            elif strict_ids:
                raise DataError(f"{list_p}: {position}: {lacks.format(vid)} {data_p}")
            else:
                self.skip(split, vid, f"no caption in {data_p.name} (listed in {list_p.name}, {position})")


def ann_path(card: DatasetCard, ann_dir: Path, role: str) -> Path:
    """The annotation file the card names for ``role``, which must exist in ``ann_dir``."""
    name = card.annotations.get(role)
    if name is None:
        raise ConfigError(f"card {card.name!r}: annotations.{role} is missing (the {card.parser_name} parser needs it)")
    if name.startswith(("/", "~")) or "\\" in name or ".." in name.split("/") or (len(name) > 1 and name[1] == ":"):
        raise ConfigError(
            f"card {card.name!r}: annotations.{role}: {shown(name)}: expected a file name inside the annotations folder"
        )
    p = ann_dir / name
    if not p.is_file():
        raise DataError(f"{p}: annotation file not found (card {card.name}, annotations.{role})")
    return p


def load_json(p: Path) -> Any:
    try:
        with open(p, encoding=TEXT_ENCODING) as f:
            return json.load(f)
    except json.JSONDecodeError as exc:
        raise DataError(f"{p}: line {exc.lineno}: not valid JSON: {exc.msg}") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{p}: not UTF-8 text (byte {exc.start})") from None
    except RecursionError:
        raise DataError(f"{p}: not valid JSON: nested too deeply") from None
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        raise DataError(f"{p}: not valid JSON: {shown(str(exc))}") from None
    except OSError as exc:
        raise DataError(f"{p}: cannot read: {exc.strerror or exc}") from None


def read_lines(p: Path) -> list[str]:
    """The lines of a text file (any of ``\\n``, ``\\r\\n``, ``\\r`` ends one), without their line ends."""
    try:
        with open(p, encoding=TEXT_ENCODING) as f:
            lines = f.read().split("\n")  # not str.splitlines: a caption may hold U+2028 or a form feed
            return lines[:-1] if lines and lines[-1] == "" else lines
    except UnicodeDecodeError as exc:
        raise DataError(f"{p}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise DataError(f"{p}: cannot read: {exc.strerror or exc}") from None


def read_id_list(p: Path) -> list[str]:
    """The non-empty lines of a text file, stripped."""
    return [s for s in (line.strip() for line in read_lines(p)) if s]


def csv_rows(p: Path, required: list[str]) -> list[tuple[int, dict]]:
    """Rows of a comma-separated file with a header, with their 1-based line numbers."""
    try:
        with open(p, encoding=TEXT_ENCODING, newline="") as f:
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
    except UnicodeDecodeError as exc:
        raise DataError(f"{p}: not UTF-8 text (byte {exc.start})") from None
    except csv.Error as exc:  # a field over csv's limit, a NUL byte, ...
        raise DataError(f"{p}: line {reader.line_num + 1}: not valid CSV: {shown(str(exc))}") from None
    except OSError as exc:
        raise DataError(f"{p}: cannot read: {exc.strerror or exc}") from None


def text_value(value: Any, where: str) -> str:
    """``value`` stripped if it is a non-empty string; else a DataError naming ``where`` and the value."""
    if not isinstance(value, str) or not value.strip():
        if value is None:
            kind = "null"
        elif isinstance(value, str):
            kind = "an empty string"
        else:
            kind = f"{type(value).__name__} {shown(value)}"
        raise DataError(f"{where}: expected a non-empty string, got {kind}")
    return value.strip()


def video_id_value(value: Any, where: str) -> str:
    """``value`` if it is a video id that names a file inside the videos folder: a non-empty string, no
    absolute path, no ``..``, no backslash or control character; else a DataError naming ``where``."""
    vid = text_value(value, where)
    if vid != value:
        raise DataError(f"{where}: video id {shown(value)} has leading or trailing white space")
    parts = vid.split("/")
    bad = (
        vid.startswith(("/", "~"))
        or "\\" in vid
        or (len(vid) > 1 and vid[1] == ":")
        or any(p in ("", ".", "..") for p in parts)
        or any(ord(c) < 32 or ord(c) == 127 for c in vid)
    )
    if bad:
        raise DataError(
            f"{where}: video id {shown(vid)}: expected a name inside the videos folder "
            "(no absolute path, '..', empty part, backslash or control character)"
        )
    return vid


def get_key(d: Any, key: str, where: str) -> Any:
    """``d[key]``; a missing key (or ``d`` not a mapping) is a DataError naming ``where`` and the key."""
    if not isinstance(d, dict) or key not in d:
        raise DataError(f"{where}: missing key {key!r}")
    return d[key]
