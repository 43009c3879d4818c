"""Retrieval evaluation over a benchmark split, sharded across data-parallel ranks.

Each rank encodes the videos its eval loader yields and all of their captions (`encode_split`, shared with
`vtrlab search`); the embeddings are gathered in rank order (which is the manifest order) and every rank
computes the same metrics (`vtrlab.train.metrics`, multi-caption protocol included).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields, replace

import torch
import torch.distributed as dist

from vtrlab.data.gallery import Gallery
from vtrlab.model.dual_encoder import VideoTextDualEncoder
from vtrlab.model.tokenizer import tokenize
from vtrlab.train.metrics import metrics_from_ranks, retrieval_ranks
from vtrlab.train.query_ranks import QueryRanks
from vtrlab.train.step import autocast_for


@dataclass(frozen=True)
class VideoEmbeddings:
    """Encoded videos: their embeddings `embedding` [V, D], or, for a text-conditioned video head (which pools
    once per query text), their frame features `frame_emb` [V, F, D], `frame_mask` [V, F] and `patch_emb`
    [V, F, P, D] (None when the head needs no patch tokens), pooled by `score_videos`."""

    embedding: torch.Tensor | None = None
    frame_emb: torch.Tensor | None = None
    frame_mask: torch.Tensor | None = None
    patch_emb: torch.Tensor | None = None

    @property
    def text_conditioned(self) -> bool:
        return self.embedding is None

    def __len__(self) -> int:
        return len(self.embedding if self.embedding is not None else self.frame_emb)

    def tensors(self) -> list[torch.Tensor]:
        """The tensors held, in field order (what `with_tensors` takes back, e.g. after a gather)."""
        return [value for value in (getattr(self, f.name) for f in fields(self)) if value is not None]

    def with_tensors(self, tensors: list[torch.Tensor]) -> VideoEmbeddings:
        names = [f.name for f in fields(self) if getattr(self, f.name) is not None]
        return replace(self, **dict(zip(names, tensors, strict=True)))

    def select(self, rows: torch.Tensor | list[int]) -> VideoEmbeddings:
        """The videos at `rows`, in that order."""
        index = torch.as_tensor(rows, dtype=torch.long)
        return self.with_tensors([t[index.to(t.device)] for t in self.tensors()])

    def to(self, device: torch.device | str) -> VideoEmbeddings:
        return self.with_tensors([t.to(device) for t in self.tensors()])


@dataclass(frozen=True)
class SplitEmbeddings:
    """One pass of `encode_split` over an eval loader: caption embeddings `text` [N, D] (empty unless asked
    for), the row of each caption's video `owner` [N], the videos, and their ids and captions in order."""

    text: torch.Tensor
    owner: torch.Tensor
    videos: VideoEmbeddings
    video_ids: list[str]
    captions: list[list[str]]

    @property
    def num_videos(self) -> int:
        return len(self.video_ids)


def _gather(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    """Concatenate each tensor over ranks in rank order (sizes may differ per rank)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return tensors
    local = [t.cpu() for t in tensors]
    everyone: list[list[torch.Tensor] | None] = [None] * dist.get_world_size()
    dist.all_gather_object(everyone, local)
    return [torch.cat([rank_tensors[i] for rank_tensors in everyone]) for i in range(len(tensors))]


def _cat(parts: list[torch.Tensor], empty: torch.Tensor) -> torch.Tensor:
    return torch.cat(parts) if parts else empty


@torch.no_grad()
def encode_split(
    encoder: VideoTextDualEncoder,
    loader: Iterable[dict],
    device: torch.device | str = "cpu",
    texts: bool = True,
) -> SplitEmbeddings:
    """Encode every video an eval loader yields, batch by batch, and (with `texts`) all of their captions.

    Query-agnostic heads give one embedding per video; a text-conditioned head (RAP with
    selection='text-conditioned') keeps the frame features instead, to pool per text in `score_videos`.
    Everything returned is on the CPU.
    """
    encoder.eval()
    device = torch.device(device)
    conditioned = encoder.video_head.text_conditioned
    patches = encoder.video_head.needs_patch_tokens  # decided by the head, the same on every rank
    videos, frame_embs, masks, patch_embs, text_rows, owners = [], [], [], [], [], []
    video_ids: list[str] = []
    captions: list[list[str]] = []
    seen = 0
    for batch in loader:
        frames = batch["frames"].to(device, non_blocking=True)
        mask = batch["frame_mask"].to(device, non_blocking=True)
        with autocast_for(device):
            if conditioned:
                frame_emb, patch_emb, mask = encoder.frame_features(frames, mask)
                frame_embs.append(frame_emb.float().cpu())
                masks.append(mask.cpu())
                if patches:
                    patch_embs.append(patch_emb.float().cpu())
            else:
                videos.append(encoder.encode_video(frames, mask).cpu())
            if texts:
                text_rows.append(encoder.encode_text(batch["tokens"].to(device)).cpu())
        owners.append(batch["caption_video_index"].cpu() + seen)
        video_ids.extend(batch["video_id"])
        captions.extend(list(c) for c in batch["captions"])
        seen += len(frames)
    if conditioned:
        encoded = VideoEmbeddings(
            frame_emb=_cat(frame_embs, torch.empty(0)),
            frame_mask=_cat(masks, torch.empty(0, dtype=torch.bool)),
            patch_emb=_cat(patch_embs, torch.empty(0)) if patches else None,
        )
    else:
        encoded = VideoEmbeddings(embedding=_cat(videos, torch.empty(0, encoder.embed_dim)))
    return SplitEmbeddings(
        text=torch.cat(text_rows) if text_rows else torch.empty(0, encoder.embed_dim),
        owner=torch.cat(owners) if owners else torch.empty(0, dtype=torch.long),
        videos=encoded,
        video_ids=video_ids,
        captions=captions,
    )


@torch.no_grad()
def score_videos(encoder: VideoTextDualEncoder, text: torch.Tensor, videos: VideoEmbeddings) -> torch.Tensor:
    """Similarities [T, V] of texts [T, D] to encoded videos (pooled per text, in blocks of bounded memory, for
    a text-conditioned head: `VideoTextDualEncoder.score_video_features`); computed where the tensors are."""
    if not videos.text_conditioned:
        return encoder.similarity(text, videos.embedding)
    return encoder.score_video_features(text, videos.frame_emb, videos.frame_mask, videos.patch_emb)


def evaluate(
    encoder: VideoTextDualEncoder,
    loader: Iterable[dict],
    device: torch.device | str = "cpu",
    gallery: Gallery | None = None,
    max_words: int | None = None,
) -> dict[str, float]:
    """The metrics of `evaluate_queries` (without the per-query ranks)."""
    return evaluate_queries(encoder, loader, device, gallery, max_words)[0]


@torch.no_grad()
def evaluate_queries(
    encoder: VideoTextDualEncoder,
    loader: Iterable[dict],
    device: torch.device | str = "cpu",
    gallery: Gallery | None = None,
    max_words: int | None = None,
) -> tuple[dict[str, float], QueryRanks]:
    """T2V/V2T R@1/5/10, MdR, MnR and R@Sum of `encoder` on every video the loaders of all ranks yield, and
    the rank of every query (in manifest order: caption queries for T2V, video queries for V2T) from which
    they are computed; the ranks' `benchmark` and `split` are left for the caller to fill in.

    `gallery` (`vtrlab.data.gallery.eval_gallery`): its missing videos join the gallery as zero-frame clips,
    their captions (tokenised to `max_words`) as queries. A zero-frame clip has no features, so it scores 0
    with every caption (CLIP4Clip's masked mean over no frame is a zero vector). The gallery's sizes are
    returned with the metrics (`eval_videos`, `eval_captions`, `eval_missing_videos`).
    """
    device = torch.device(device)
    local = encode_split(encoder, loader, device)
    counts = _gather([torch.tensor([local.num_videos])])[0]
    offsets = torch.cumsum(counts, 0) - counts
    rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
    owner = local.owner + offsets[rank]
    text, owner, *video_tensors = _gather([local.text, owner, *local.videos.tensors()])
    videos = local.videos.with_tensors(video_tensors)
    missing = gallery.missing if gallery is not None else []
    if missing:
        if max_words is None:
            raise ValueError("evaluate: max_words is needed to encode the captions of missing videos")
        captions = [caption for video in missing for caption in video.captions]
        with autocast_for(device):
            extra = encoder.encode_text(tokenize(captions, max_words).to(device)).float().cpu()
        owners = [len(videos) + i for i, video in enumerate(missing) for _ in video.captions]
        text, owner = torch.cat([text, extra.to(text.dtype)]), torch.cat([owner, torch.tensor(owners)])
    if videos.text_conditioned:  # pooling per text runs on the device; a dot product does not need to
        text, videos = text.to(device), videos.to(device)
    sim = score_videos(encoder, text, videos).float().cpu()
    if missing:
        sim = torch.cat([sim, sim.new_zeros(len(sim), len(missing))], dim=1)
    t2v_ranks, v2t_ranks = retrieval_ranks(sim, owner)
    metrics = metrics_from_ranks(t2v_ranks, v2t_ranks)
    metrics.update({"eval_videos": float(sim.shape[1]), "eval_captions": float(sim.shape[0])})
    metrics["eval_missing_videos"] = float(len(missing))
    return metrics, QueryRanks(t2v_ranks.cpu(), v2t_ranks.cpu())
