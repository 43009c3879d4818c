"""Retrieval evaluation over a benchmark split, sharded across data-parallel ranks.

Each rank encodes the videos its eval loader yields and all of their captions; the embeddings are
gathered in rank order (which is the manifest order) and every rank computes the same metrics
(`vtrlab.train.metrics`, multi-caption protocol included).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.distributed as dist

from vtrlab.model.dual_encoder import VideoTextDualEncoder
from vtrlab.train.metrics import retrieval_metrics
from vtrlab.train.step import autocast_for

TEXT_CHUNK = 16  # texts per pooling call for text-conditioned heads (memory ~ chunk x videos x frames)


def _gather(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    """Concatenate each tensor over ranks in rank order (sizes may differ per rank)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return tensors
    local = [t.cpu() for t in tensors]
    everyone: list[list[torch.Tensor] | None] = [None] * dist.get_world_size()
    dist.all_gather_object(everyone, local)
    return [torch.cat([rank_tensors[i] for rank_tensors in everyone]) for i in range(len(tensors))]


def _similarity_text_conditioned(
    encoder: VideoTextDualEncoder, text: torch.Tensor, frame_emb, frame_mask, patch_emb
) -> torch.Tensor:
    rows = []
    for start in range(0, len(text), TEXT_CHUNK):
        chunk = text[start : start + TEXT_CHUNK]
        videos = encoder.pool_video(frame_emb, frame_mask, patch_emb, text_emb=chunk)  # [T, V, D]
        rows.append(encoder.similarity(chunk, videos))
    return torch.cat(rows)


@torch.no_grad()
def evaluate(
    encoder: VideoTextDualEncoder, loader: Iterable[dict], device: torch.device | str = "cpu"
) -> dict[str, float]:
    """T2V/V2T R@1/5/10, MdR, MnR and R@Sum of `encoder` on every video the loaders of all ranks yield."""
    encoder.eval()
    device = torch.device(device)
    conditioned = encoder.video_head.text_conditioned
    videos, texts, owners, features = [], [], [], []
    seen = 0
    for batch in loader:
        frames = batch["frames"].to(device, non_blocking=True)
        mask = batch["frame_mask"].to(device, non_blocking=True)
        with autocast_for(device):
            if conditioned:
                frame_emb, patch_emb, mask = encoder.frame_features(frames, mask)
                features.append((frame_emb.float().cpu(), mask.cpu(), patch_emb.float().cpu()))
            else:
                videos.append(encoder.encode_video(frames, mask).cpu())
            texts.append(encoder.encode_text(batch["tokens"].to(device)).cpu())
        owners.append(batch["caption_video_index"].cpu() + seen)
        seen += len(frames)
    text = torch.cat(texts) if texts else torch.empty(0, encoder.embed_dim)
    owner = torch.cat(owners) if owners else torch.empty(0, dtype=torch.long)
    counts = _gather([torch.tensor([seen])])[0]
    offsets = torch.cumsum(counts, 0) - counts
    rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
    owner = owner + offsets[rank]
    if conditioned:
        frame_emb = torch.cat([f[0] for f in features]) if features else torch.empty(0)
        mask = torch.cat([f[1] for f in features]) if features else torch.empty(0, dtype=torch.bool)
        patch_emb = torch.cat([f[2] for f in features]) if features else torch.empty(0)
        text, owner, frame_emb, mask, patch_emb = _gather([text, owner, frame_emb, mask, patch_emb])
        sim = _similarity_text_conditioned(
            encoder, text.to(device), frame_emb.to(device), mask.to(device), patch_emb.to(device)
        )
    else:
        video = torch.cat(videos) if videos else torch.empty(0, encoder.embed_dim)
        text, owner, video = _gather([text, owner, video])
        sim = text @ video.T
    return retrieval_metrics(sim.float().cpu(), owner)
