"""Retrieval with a loaded encoder over a benchmark split's shards: text -> videos and video -> texts.

The split is encoded once (`vtrlab.train.evaluate.encode_split`, batched, as evaluation does) into a
`RetrievalIndex`; queries are tokenised like the loader's captions. Text-conditioned video heads pool the
videos once per query text (`score_videos`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from vtrlab.errors import ConfigError, NotFoundError
from vtrlab.hub.pull import PulledAdapter
from vtrlab.model.adapter_config import EvaluationSettings
from vtrlab.model.dual_encoder import VideoTextDualEncoder
from vtrlab.train.evaluate import SplitEmbeddings, encode_split, score_videos
from vtrlab.train.step import autocast_for

DEFAULT_EVAL_BATCH = 64


@dataclass(frozen=True)
class VideoHit:
    """A video found for a text: its rank (1 = best), cosine similarity, id and captions."""

    rank: int
    score: float
    video_id: str
    captions: list[str]


@dataclass(frozen=True)
class CaptionHit:
    """A caption found for a video: rank, similarity, the caption, its own video and whether that is the
    queried video."""

    rank: int
    score: float
    caption: str
    video_id: str
    own: bool


@dataclass(frozen=True)
class RetrievalSettings:
    """Which split is read and how: frames per clip, words per caption, videos per batch."""

    split: str
    num_frames: int
    max_words: int
    batch_size: int


def retrieval_settings(
    pulled: PulledAdapter,
    *,
    split: str | None = None,
    num_frames: int | None = None,
    max_words: int | None = None,
) -> RetrievalSettings:
    """What the adapter was evaluated with: the split, frames, words and batch size its artifact records
    (`vtrlab.model.adapter_config.evaluation_settings`, the one reader), each replaced by an explicit value
    when one is given (the CLI's overrides)."""
    from vtrlab.model.adapter_config import evaluation_settings

    recorded = _from_evaluation(evaluation_settings(pulled.path))
    return overridden(recorded, split=split, num_frames=num_frames, max_words=max_words)


def overridden(
    settings: RetrievalSettings,
    *,
    split: str | None = None,
    num_frames: int | None = None,
    max_words: int | None = None,
) -> RetrievalSettings:
    """`settings` with each value given here in place of its own; ConfigError naming a bad one."""
    if split is not None and not split.strip():
        raise ConfigError("split '': expected a split name, e.g. test")
    for name, value in (("num_frames", num_frames), ("max_words", max_words)):
        if value is not None and value < 1:
            raise ConfigError(f"{name} {value}: expected at least 1")
    return replace(
        settings,
        split=split if split is not None else settings.split,
        num_frames=num_frames if num_frames is not None else settings.num_frames,
        max_words=max_words if max_words is not None else settings.max_words,
    )


def _from_evaluation(evaluation: EvaluationSettings) -> RetrievalSettings:
    return RetrievalSettings(evaluation.split, evaluation.num_frames, evaluation.max_words, evaluation.batch_size)


def _manifest_card(url: str, why: str) -> dict:
    from vtrlab.data import read_manifest

    card = read_manifest(url).get("card") or {}
    if not card.get("num_frames") or not card.get("max_words"):
        raise ConfigError(f"{url}: manifest has no card with num_frames and max_words, and {why}")
    return card


def shard_settings(url: str) -> RetrievalSettings:
    """The split, frames and words the benchmark card in the shards' manifest names (only for an encoder
    not loaded from an artifact, e.g. a zero-shot CLIP: an artifact's own settings come first)."""
    card = _manifest_card(url, "no settings were given")
    split = str(card.get("eval_split") or "test")
    return RetrievalSettings(split, int(card["num_frames"]), int(card["max_words"]), DEFAULT_EVAL_BATCH)


class RetrievalIndex:
    """A split encoded once by `encoder`, answering text -> video and video -> text queries."""

    def __init__(
        self,
        encoder: VideoTextDualEncoder,
        embeddings: SplitEmbeddings,
        *,
        url: str,
        split: str,
        max_words: int,
        device: torch.device | str = "cpu",
    ):
        self.encoder, self.url, self.split, self.max_words = encoder, url, split, max_words
        self.device = torch.device(device)
        self.embeddings = embeddings
        self.videos = embeddings.videos.to(self.device)
        self.rows = {video_id: row for row, video_id in enumerate(embeddings.video_ids)}

    @classmethod
    def build(
        cls,
        encoder: VideoTextDualEncoder,
        url: str,
        split: str | None = None,
        *,
        settings: RetrievalSettings | None = None,
        device: torch.device | str = "cpu",
        texts: bool = True,
    ) -> RetrievalIndex:
        """Encode every video of the split at `url` (and, with `texts`, every caption, for video -> text).

        `settings` default to the ones the encoder's artifact records (`encoder.evaluation`, set by
        `load_adapter_into` through `evaluation_settings`), else, for an encoder not loaded from an
        artifact, to the shards' card; `split` replaces the settings' split."""
        from vtrlab.data import make_eval_loader

        if settings is None:
            recorded = encoder.evaluation
            settings = _from_evaluation(recorded) if recorded is not None else shard_settings(url)
        settings = overridden(settings, split=split)
        loader = make_eval_loader(
            url,
            settings.split,
            batch_size=settings.batch_size,
            num_frames=settings.num_frames,
            max_words=settings.max_words,
        )
        embeddings = encode_split(encoder, loader, device, texts=texts)
        return cls(encoder, embeddings, url=url, split=settings.split, max_words=settings.max_words, device=device)

    @property
    def video_ids(self) -> list[str]:
        return self.embeddings.video_ids

    @torch.no_grad()
    def encode_queries(self, queries: list[str]) -> torch.Tensor:
        """Text embeddings [Q, D] of `queries`, tokenised as the loader tokenises captions."""
        from vtrlab.model.tokenizer import tokenize

        blank = [q for q in queries if not q.strip()]
        if blank or not queries:
            raise ConfigError("the query text is empty; pass words to search for, e.g. --query 'a red square'")
        tokens = tokenize(queries, self.max_words).long().to(self.device)
        with autocast_for(self.device):
            return self.encoder.encode_text(tokens).float()

    @torch.no_grad()
    def text_scores(self, queries: list[str]) -> torch.Tensor:
        """Similarities [Q, V] of each query to every video of the split (on the CPU)."""
        return score_videos(self.encoder, self.encode_queries(queries), self.videos).float().cpu()

    def text_to_videos(self, query: str, k: int = 5) -> list[VideoHit]:
        """The `k` videos most similar to `query`, best first."""
        scores = self.text_scores([query])[0]
        top = torch.topk(scores, min(_check_k(k), len(scores)))
        return [
            VideoHit(rank, float(score), self.video_ids[row], list(self.embeddings.captions[row]))
            for rank, (score, row) in enumerate(zip(top.values.tolist(), top.indices.tolist(), strict=True), 1)
        ]

    @torch.no_grad()
    def video_to_texts(self, video_id: str, k: int = 5) -> list[CaptionHit]:
        """The `k` captions of the split most similar to video `video_id`, best first."""
        row = self.row(video_id)
        if len(self.embeddings.text) != len(self.embeddings.owner):
            raise ConfigError("this index was built without caption embeddings (texts=False); rebuild it with texts")
        text = self.embeddings.text.to(self.device)
        scores = score_videos(self.encoder, text, self.videos.select([row]))[:, 0].float().cpu()
        top = torch.topk(scores, min(_check_k(k), len(scores)))
        captions = [c for cs in self.embeddings.captions for c in cs]
        owner = self.embeddings.owner.tolist()
        return [
            CaptionHit(rank, float(score), captions[i], self.video_ids[owner[i]], owner[i] == row)
            for rank, (score, i) in enumerate(zip(top.values.tolist(), top.indices.tolist(), strict=True), 1)
        ]

    def row(self, video_id: str) -> int:
        """The index of `video_id` in the split; NotFoundError naming the id, split and shards."""
        if video_id not in self.rows:
            examples = ", ".join(self.video_ids[:5])
            raise NotFoundError(
                f"video {video_id!r} is not in split {self.split!r} of {self.url} "
                f"({len(self.video_ids)} videos, e.g. {examples})"
            )
        return self.rows[video_id]


def _check_k(k: int) -> int:
    if k < 1:
        raise ConfigError(f"k {k}: expected at least 1 result")
    return k
