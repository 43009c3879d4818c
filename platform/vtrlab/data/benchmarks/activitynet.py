"""ActivityNet Captions (CLIP4Clip layout): the sentences of a video joined into one paragraph over the
whole video, [0, ceil(duration)] s (end inclusive, as CLIP4Clip decodes). ``train.json`` / ``val_1.json``
map ``v_<id>`` to ``{duration, timestamps, sentences}``; ``train_ids.json`` / ``val_ids.json`` list a
split's ids. Video files are named with or without the ``v_`` prefix.

The official id lists name videos the caption files lack (train_ids.json 10,024 ids, train.json 10,009
videos; val_ids.json 4,926, val_1.json 4,917): those ids are skipped as CLIP4Clip skips them, reported in
:attr:`Parsed.skipped`; ``strict_ids`` makes them an error. A repeated id is kept once.
"""

from __future__ import annotations

import math
from pathlib import Path

from vtrlab.config import shown
from vtrlab.data.benchmarks.common import Parsed, VideoItem, ann_path, get_key, load_json, text_value, video_id_value
from vtrlab.data.benchmarks.registry import register_benchmark
from vtrlab.data.card import DatasetCard
from vtrlab.errors import DataError


@register_benchmark("activitynet", "ActivityNet Captions: a video's sentences as one paragraph, evaluated on val_1")
def parse_activitynet(card: DatasetCard, ann_dir: Path, splits: list[str], strict_ids: bool = False) -> Parsed:
    """The official id lists name videos the caption files lack (train_ids.json 10,024 ids, train.json 10,009
    videos); like CLIP4Clip those ids are skipped (repeated ids kept once), or with ``strict_ids`` an error."""
    out = Parsed()
    for split in splits:
        data_p = ann_path(card, ann_dir, split)
        ids_p = ann_path(card, ann_dir, f"{split}_ids")
        ids = load_json(ids_p)
        if not isinstance(ids, list):
            raise DataError(f"{ids_p}: expected a JSON list of video ids ('v_...')")
        data = load_json(data_p)
        if not isinstance(data, dict):
            raise DataError(f"{data_p}: expected a JSON object video id -> {{duration, timestamps, sentences}}")
        items = []
        listed = ((f"entry [{i}]", video_id_value(v, f"{ids_p}: entry [{i}]")) for i, v in enumerate(ids))
        kept = out.captioned(
            split,
            listed,
            data,
            list_p=ids_p,
            data_p=data_p,
            lacks="video id {!r} is not a key of",
            strict_ids=strict_ids,
        )
        for vid in kept:
            entry = data[vid]
            where = f"{data_p}: key {vid!r}"
            sentences = get_key(entry, "sentences", where)
            duration = get_key(entry, "duration", where)
            if not isinstance(sentences, list) or not sentences:
                raise DataError(f"{where}.sentences: expected a non-empty list of sentences")
            ok = isinstance(duration, int | float) and not isinstance(duration, bool)
            if not ok or not math.isfinite(duration) or duration <= 0:
                raise DataError(f"{where}.duration: expected a number of seconds > 0, got {shown(duration)}")
            end = float(math.ceil(duration))
            sents = [text_value(s, f"{where}.sentences[{j}]") for j, s in enumerate(sentences)]
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
