"""MSVD (CLIP4Clip layout): ``raw-captions.pkl`` maps each video id to its captions, each a list of
token strings (joined with spaces, as CLIP4Clip does); ``<split>_list.txt`` lists a split's ids. Every
caption is a query (multi-caption). Video files are ``<video_id>.avi``.

The pickle is read with :func:`~vtrlab.data.benchmarks.safe_pickle.load_plain_pickle`: no code runs from it.
Every listed id must have captions (CLIP4Clip asserts it).
"""

from __future__ import annotations

from pathlib import Path

from vtrlab.data.benchmarks.common import Parsed, VideoItem, ann_path, read_id_list, video_id_value
from vtrlab.data.benchmarks.registry import register_benchmark
from vtrlab.data.benchmarks.safe_pickle import load_plain_pickle
from vtrlab.data.card import DatasetCard
from vtrlab.errors import DataError


def _msvd_captions(value: object, cap_p: Path, vid: str) -> list[str]:
    """One video's captions: a list of token lists, each joined with spaces (as CLIP4Clip does)."""
    if not isinstance(value, list | tuple):
        raise DataError(
            f"{cap_p}: key {vid!r}: expected a list of captions (each a list of token strings), "
            f"got {type(value).__name__}"
        )
    caps = []
    for j, toks in enumerate(value):
        if not isinstance(toks, list | tuple) or not all(isinstance(t, str) for t in toks):
            raise DataError(
                f"{cap_p}: key {vid!r}[{j}]: expected a caption as a list of token strings, got {toks!r:.80}"
            )
        if not " ".join(toks).strip():
            raise DataError(f"{cap_p}: key {vid!r}[{j}]: an empty caption")
        caps.append(" ".join(toks))
    if not caps:
        raise DataError(f"{cap_p}: key {vid!r}: no captions")
    return caps


@register_benchmark("msvd", "MSVD (YouTube2Text): every caption of a video, all of them queries")
def parse_msvd(card: DatasetCard, ann_dir: Path, splits: list[str], strict_ids: bool = False) -> Parsed:
    cap_p = ann_path(card, ann_dir, "captions")
    raw = load_plain_pickle(cap_p)
    if not isinstance(raw, dict):
        raise DataError(f"{cap_p}: expected a dict video_id -> list of token lists, got {type(raw).__name__}")
    out = Parsed()
    for split in splits:
        list_p = ann_path(card, ann_dir, split)
        items = []
        for n, vid in enumerate(read_id_list(list_p), start=1):
            vid = video_id_value(vid, f"{list_p}: line {n}")
            if vid not in raw:
                raise DataError(f"{list_p}: line {n}: video id {vid!r} is not a key of {cap_p}")
            items.append(VideoItem(vid, _msvd_captions(raw[vid], cap_p, vid), file_hint=f"{vid}.avi"))
        out[split] = items
    return out
