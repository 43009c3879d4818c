"""RAP: LoRM's salience weights the mean over frames (where a per-frame emphasis survives meanP), and
text-conditioned selection in bounded blocks equals the per-pair computation it replaces."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from vtrlab.model.dual_encoder import masked_mean_pool
from vtrlab.model.methods import rap
from vtrlab.model.methods.rap import RapKnobs, RapVideoHead


def features(videos=5, frames=6, patches=16, dim=32, seed=0):
    generator = torch.Generator().manual_seed(seed)
    frame_emb = torch.randn(videos, frames, dim, generator=generator)
    patch_emb = torch.randn(videos, frames, patches, dim, generator=generator)
    mask = torch.ones(videos, frames, dtype=torch.bool)
    mask[1, 4:] = False
    mask[3, 2:] = False
    return frame_emb, patch_emb, mask


def randomised(module, seed=1):
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in module.parameters():
            param.copy_(torch.randn(param.shape, generator=generator) * 0.3)
    return module.eval()


def test_a_frames_weight_changes_the_video_embedding_a_frame_scale_does_not():
    frame_emb, _, mask = features()
    plain = masked_mean_pool(frame_emb, mask)
    scaled = frame_emb.clone()
    scaled[0, 1] *= 5.0  # a per-frame scalar on the features: cancelled by the per-frame L2 normalisation
    torch.testing.assert_close(masked_mean_pool(scaled, mask), plain, atol=1e-6, rtol=0)
    weights = torch.ones(mask.shape)
    weights[0, 1] = 5.0  # the same emphasis as a pooling weight
    weighted = masked_mean_pool(frame_emb, mask, weights)
    assert float((weighted[0] - plain[0]).abs().max()) > 1e-2
    torch.testing.assert_close(weighted[1:], plain[1:], atol=1e-6, rtol=0)


def test_lorm_salience_reaches_the_video_embedding():
    frame_emb, _, mask = features()
    head = RapVideoHead(32, 16, RapKnobs(asa=False, rank=4, max_frames=8))
    with torch.no_grad():
        start = head(frame_emb, mask)
        torch.testing.assert_close(start, masked_mean_pool(frame_emb, mask), atol=1e-6, rtol=0)  # uniform at init
        head.lorm.modulation.weight[-1].normal_()  # the frame-weight column of W
        emphasised = head(frame_emb, mask)
        head.salience_pooling = False
        unweighted = head(frame_emb, mask)
    assert float((emphasised - start).abs().max()) > 1e-3
    torch.testing.assert_close(unweighted, start, atol=1e-6, rtol=0)  # the scale/shift columns are still zero


def naive_text_conditioned(head: RapVideoHead, frame_emb, patch_emb, mask, text):
    """The computation the blocks replace: every (text, video) pair materialised, patches gathered per pair,
    attended with scaled_dot_product_attention, modulated and pooled."""
    asa = head.asa
    texts, videos = len(text), len(frame_emb)

    def repeat(x):
        return x.unsqueeze(0).expand(texts, *x.shape).flatten(0, 1)

    frames, patches, pair_mask = repeat(frame_emb), repeat(patch_emb), repeat(mask)
    scores = torch.einsum("bfpd,td->tbfp", F.normalize(patch_emb, dim=-1), text).flatten(0, 1)
    top = scores.topk(asa.keep, dim=-1).indices
    kept = patches.gather(2, top.unsqueeze(-1).expand(-1, -1, -1, patches.shape[-1]))
    keys, values = asa.key_value(asa.ln(kept)).chunk(2, dim=-1)
    delta = asa.temporal_offset[: frames.shape[1]]
    keys = keys + asa.patch_offset[top] + delta[None, :, None]
    query = asa.query(asa.ln(frames)) + delta[None]
    width = query.shape[-1]

    def heads(x):
        return x.reshape(len(x), -1, asa.heads, width // asa.heads).transpose(1, 2)

    key_mask = pair_mask.repeat_interleave(asa.keep, dim=1)[:, None, None, :]
    attended = F.scaled_dot_product_attention(heads(query), heads(keys), heads(values), attn_mask=key_mask)
    refined = frames + asa.up(attended.transpose(1, 2).reshape(len(frames), frames.shape[1], width))
    modulated, weights = head.lorm(refined, pair_mask)
    return masked_mean_pool(modulated, pair_mask, weights).view(texts, videos, -1)


@pytest.mark.parametrize(("pair_chunk", "video_chunk"), [(6, 2), (7, 3), (2048, 64)])
def test_text_conditioned_blocks_equal_the_per_pair_computation(monkeypatch, pair_chunk, video_chunk):
    monkeypatch.setattr(rap, "PAIR_CHUNK", pair_chunk)
    monkeypatch.setattr(rap, "VIDEO_CHUNK", video_chunk)
    frame_emb, patch_emb, mask = features()
    head = randomised(RapVideoHead(32, 16, RapKnobs(selection="text-conditioned", rank=4, max_frames=8)))
    text = F.normalize(torch.randn(4, 32, generator=torch.Generator().manual_seed(9)), dim=-1)
    with torch.no_grad():
        pooled = head(frame_emb, mask, patch_emb, text)
        expected = naive_text_conditioned(head, frame_emb, patch_emb, mask, text)
    assert pooled.shape == (4, 5, 32)
    torch.testing.assert_close(pooled, expected, atol=1e-5, rtol=0)


def test_text_conditioned_selection_depends_on_the_text_and_trains():
    frame_emb, patch_emb, mask = features()
    head = randomised(RapVideoHead(32, 16, RapKnobs(selection="text-conditioned", rank=4, max_frames=8)))
    head.train()
    text = F.normalize(torch.randn(3, 32, generator=torch.Generator().manual_seed(2)), dim=-1)
    pooled = head(frame_emb, mask, patch_emb, text)
    assert float((pooled[0] - pooled[1]).detach().abs().max()) > 1e-4  # another query keeps other patches
    pooled.sum().backward()
    assert all(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in head.parameters())


def test_keep_count_follows_sparsity():
    head = RapVideoHead(32, 196, RapKnobs(sparsity=0.25))
    assert head.asa.keep == math.ceil(0.25 * 196) == 49
