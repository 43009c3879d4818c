"""LSMDC 2016 (CLIP4Clip layout): tab-separated lines of 6 fields (clip id, start/end aligned, start/end
extracted, sentence), one sentence per clip. Lines are stripped before splitting, as CLIP4Clip does, so a
trailing tab is accepted. Clip files are ``<movie>/<clip id>.avi``.
"""

from __future__ import annotations

from pathlib import Path

from vtrlab.data.benchmarks.common import Parsed, VideoItem, ann_path, read_lines, video_id_value
from vtrlab.data.benchmarks.registry import register_benchmark
from vtrlab.data.card import DatasetCard
from vtrlab.errors import DataError


@register_benchmark("lsmdc", "LSMDC 2016 movie clips: one sentence per clip")
def parse_lsmdc(card: DatasetCard, ann_dir: Path, splits: list[str], strict_ids: bool = False) -> Parsed:
    out = Parsed()
    for split in splits:
        p = ann_path(card, ann_dir, split)
        items: list[VideoItem] = []
        seen: dict[str, VideoItem] = {}
        for n, line in enumerate(read_lines(p), start=1):
            line = line.strip()  # as CLIP4Clip: a trailing tab (an empty 7th field) is dropped
            if not line:
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
            clip_id = video_id_value(clip_id, f"{p}: line {n}: clip id")
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
