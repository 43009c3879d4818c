"""An evaluation split's gallery against the card's expected sizes: retrieval scores over fewer videos than
the papers' are not comparable with them, so a split that came out short of the card (test videos missing
or undecodable at build time) is refused unless the run allows it. Allowed, the videos the build skipped
stay in the gallery as zero-frame clips (CLIP4Clip keeps an unreadable video as an all-masked clip), with
their captions as queries, and the result says how many there were.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from vtrlab.data.shards import manifest_split
from vtrlab.errors import DataError

__all__ = ["Gallery", "MissingVideo", "eval_gallery"]

_SHOWN = 5  # skipped videos named in an error


@dataclass(frozen=True)
class MissingVideo:
    """A video of the split that the build skipped, kept in the gallery as a zero-frame clip."""

    video_id: str
    captions: list[str]


@dataclass(frozen=True)
class Gallery:
    """What an evaluation of a split ranks over: the videos and captions in the shards, the videos kept as
    zero-frame clips (``missing``), and the card's expected sizes (None: the card gives none)."""

    videos: int
    captions: int
    missing: list[MissingVideo] = field(default_factory=list)
    expected: dict[str, int] | None = None

    @property
    def eval_videos(self) -> int:
        return self.videos + len(self.missing)

    @property
    def eval_captions(self) -> int:
        return self.captions + sum(len(m.captions) for m in self.missing)


def eval_gallery(manifest: dict, split: str, url: str, *, allow_missing: bool = False) -> Gallery:
    """The gallery of ``split`` in a built dataset's ``manifest`` (read from ``url``, named in errors).

    A split holding fewer videos or captions than the card expects raises :class:`DataError` naming the URL,
    the counts and the first skipped videos, unless ``allow_missing``: then every skipped video whose captions
    the manifest recorded is kept as a zero-frame clip.
    """
    info = manifest_split(manifest, split)
    videos, captions = int(info["videos"]), int(info["captions"])
    expected = info.get("expected")
    short = bool(expected) and (videos < expected["videos"] or captions < expected["captions"])
    if not short:
        return Gallery(videos, captions, [], expected)
    skipped = info.get("skipped") or []
    if not allow_missing:
        named = "; ".join(f"{s['video_id']} ({s['reason'][:120]})" for s in skipped[:_SHOWN])
        more = f" and {len(skipped) - _SHOWN} more" if len(skipped) > _SHOWN else ""
        why = f"the build skipped {len(skipped)}: {named}{more}" if skipped else "the build skipped none"
        raise DataError(
            f"{url}: split {split!r} holds {videos} videos and {captions} captions, the card expects "
            f"{expected['videos']} and {expected['captions']} ({why}); scores over a smaller gallery are not "
            "comparable with the papers'. Add the missing videos and rebuild, or set allow_missing: true to "
            "evaluate with them as zero-frame clips"
        )
    missing = [MissingVideo(s["video_id"], list(s["captions"])) for s in skipped if s.get("captions")]
    return Gallery(videos, captions, missing, expected)
