"""MSR-VTT (CLIP4Clip layout): the 9k train split with every caption of a video, and the 1k-A test split.

Train: the ids of ``MSRVTT_train.9k.csv`` with all their captions from ``MSRVTT_data.json`` (key
``sentences``), one item per video (~20 captions). Test: the one JSFUSION sentence per video of
``MSRVTT_JSFUSION_test.csv``. Video files are ``<video_id>.mp4``.
"""

from __future__ import annotations

from pathlib import Path

from vtrlab.data.benchmarks.common import (
    Parsed,
    VideoItem,
    ann_path,
    csv_rows,
    get_key,
    load_json,
    text_value,
    video_id_value,
)
from vtrlab.data.benchmarks.registry import register_benchmark
from vtrlab.data.card import DatasetCard
from vtrlab.errors import DataError


@register_benchmark("msrvtt", "MSR-VTT 9k train (every caption) and 1k-A test (one JSFUSION sentence per video)")
def parse_msrvtt(card: DatasetCard, ann_dir: Path, splits: list[str], strict_ids: bool = False) -> Parsed:
    out = Parsed()
    if "train" in splits:
        data_p = ann_path(card, ann_dir, "data")
        train_p = ann_path(card, ann_dir, "train")
        train_ids = [
            video_id_value(row["video_id"], f"{train_p}: line {line}: video_id")
            for line, row in csv_rows(train_p, ["video_id"])
        ]
        data = load_json(data_p)
        sentences = get_key(data, "sentences", str(data_p))
        if not isinstance(sentences, list):
            raise DataError(
                f"{data_p}: sentences: expected a list of {{video_id, caption}}, got {type(sentences).__name__}"
            )
        caps: dict[str, list[str]] = {}
        for i, s in enumerate(sentences):
            where = f"{data_p}: sentences[{i}]"
            vid = text_value(get_key(s, "video_id", where), f"{where}.video_id")
            caps.setdefault(vid, []).append(text_value(get_key(s, "caption", where), f"{where}.caption"))
        items = []
        for vid in train_ids:
            if vid not in caps:
                raise DataError(f"{train_p}: video_id {vid!r} has no caption in {data_p} (key 'sentences')")
            items.append(VideoItem(vid, caps[vid], file_hint=f"{vid}.mp4"))
        out["train"] = items
    if "test" in splits:
        test_p = ann_path(card, ann_dir, "test")
        items = []
        seen: dict[str, VideoItem] = {}
        for line, row in csv_rows(test_p, ["video_id", "sentence"]):
            vid = video_id_value(row["video_id"], f"{test_p}: line {line}: video_id")
            sentence = text_value(row["sentence"], f"{test_p}: line {line}: sentence")
            if vid in seen:  # not in 1k-A, but keep every sentence if a user's file repeats a video
                seen[vid].captions.append(sentence)
                continue
            it = VideoItem(vid, [sentence], file_hint=f"{vid}.mp4", meta={"line": line})
            seen[vid] = it
            items.append(it)
        out["test"] = items
    return out
