"""Parse a benchmark's annotation files exactly as users download them (CLIP4Clip layout).

:func:`parse_annotations` runs the parser the card names (``card.parser``, default its ``name``) from the
benchmark registry (:mod:`vtrlab.data.benchmarks`, one module per benchmark) and returns, per split, a
list of :class:`VideoItem` (video id, video file name hint, time span, captions). Conventions:

- One item per VIDEO with all of its captions (MSR-VTT train: the ~20 captions of each of the 9k videos;
  the loader expands them into one pair per caption, so frames are stored once).
- MSR-VTT test (1k-A): the one JSFUSION sentence per video. MSVD: every caption of every video (the
  multi-caption protocol). LSMDC: one sentence per clip; clip ids map to clip files.
- DiDeMo and ActivityNet: all sentences of a video joined (with spaces, in annotation order) into one
  paragraph over the whole video. DiDeMo's span is [0, 31] s as in CLIP4Clip (annotations cover the
  first 30 s; end inclusive: 32 one-second marks); ActivityNet's is [0, ceil(duration)]. Ids their id
  lists name without captions are skipped (``Parsed.skipped``), or an error with ``strict_ids``.

Video files are found by :class:`VideoIndex`. Bad annotation files raise :class:`~vtrlab.errors.DataError`
naming the file and the line or key.
"""

from __future__ import annotations

import os
from pathlib import Path

from vtrlab.config import shown
from vtrlab.data.benchmarks.common import Parsed, VideoItem
from vtrlab.data.benchmarks.registry import get_benchmark
from vtrlab.data.benchmarks.video_index import VIDEO_EXTENSIONS, VideoIndex
from vtrlab.data.card import DatasetCard
from vtrlab.errors import ConfigError, DataError

__all__ = ["VIDEO_EXTENSIONS", "Parsed", "VideoIndex", "VideoItem", "parse_annotations"]


def parse_annotations(
    card: DatasetCard, annotations: str | os.PathLike, splits: list[str] | None = None, *, strict_ids: bool = False
) -> Parsed:
    """Per split, the list of :class:`VideoItem` of a benchmark (``splits`` default: all of the card's).

    Ids that an id list names but the caption file lacks (ActivityNet, DiDeMo) are skipped and listed in
    the result's ``skipped``; ``strict_ids=True`` makes them a DataError instead."""
    entry = get_benchmark(card.parser_name)
    splits = list(dict.fromkeys(splits or card.splits))  # a split named twice is built once
    unknown = [s for s in splits if s not in card.splits]
    if unknown:
        raise ConfigError(
            f"--splits: unknown split(s) {shown(unknown)} of card {card.name!r}; the card has {sorted(card.splits)}"
        )
    ann_dir = Path(annotations)
    if not ann_dir.is_dir():
        raise DataError(f"{ann_dir}: annotations folder not found (--annotations)")
    parsed = entry.parse(card, ann_dir, splits, strict_ids)
    for split in splits:  # an empty split file is not an empty split: the card says how many videos it has
        expected = card.splits[split].videos
        if expected and not parsed.get(split) and not parsed.skipped.get(split):
            name = card.annotations.get(split)
            where = ann_dir / name if name else ann_dir
            raise DataError(f"{where}: split {split!r} lists no video (the card expects {expected})")
    return parsed
