"""DiDeMo (CLIP4Clip layout): all descriptions of a video joined (with spaces, in annotation order) into one
paragraph over the first 31 s of the video. ``<split>_data.json`` holds the descriptions,
``<split>_list.txt`` the split's video file names.

Ids of the list without any description are skipped, as CLIP4Clip skips them (it keeps the ids that
have captions and files), and reported in :attr:`Parsed.skipped`; ``strict_ids`` makes them an error.
"""

from __future__ import annotations

from pathlib import Path

from vtrlab.data.benchmarks.common import (
    Parsed,
    VideoItem,
    ann_path,
    get_key,
    load_json,
    read_id_list,
    text_value,
    video_id_value,
)
from vtrlab.data.benchmarks.registry import register_benchmark
from vtrlab.data.card import DatasetCard
from vtrlab.errors import DataError

DIDEMO_END_S = 31.0  # CLIP4Clip: annotations cover the first 30 s (5-s chunks); the clip is [0, 31] s, 32 marks


@register_benchmark("didemo", "DiDeMo: the descriptions of a video as one paragraph over [0, 31] s")
def parse_didemo(card: DatasetCard, ann_dir: Path, splits: list[str], strict_ids: bool = False) -> Parsed:
    """Ids of the list without a description are skipped (CLIP4Clip keeps the intersection), or with
    ``strict_ids`` an error."""
    out = Parsed()
    for split in splits:
        data_p = ann_path(card, ann_dir, split)
        list_p = ann_path(card, ann_dir, f"{split}_list")
        ids = [video_id_value(v, f"{list_p}: line {n}") for n, v in enumerate(read_id_list(list_p), start=1)]
        wanted = set(ids)
        data = load_json(data_p)
        if not isinstance(data, list):
            raise DataError(f"{data_p}: expected a JSON list of {{video, description, times}} entries")
        texts: dict[str, list[str]] = {}
        times: dict[str, list] = {}
        for i, entry in enumerate(data):
            where = f"{data_p}: entry [{i}]"
            video = text_value(get_key(entry, "video", where), f"{where}.video")
            desc = text_value(get_key(entry, "description", where), f"{where}.description")
            t = get_key(entry, "times", where)
            if video not in wanted:
                continue
            texts.setdefault(video, []).append(desc)
            times.setdefault(video, []).append(t)
        items = []
        listed = ((f"line {n}", vid) for n, vid in enumerate(ids, start=1))
        kept = out.captioned(
            split,
            listed,
            texts,
            list_p=list_p,
            data_p=data_p,
            lacks="video {!r} has no description in",
            strict_ids=strict_ids,
        )
        for vid in kept:
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
