"""MV-Adapter against a reference written here from the authors' description (their VideoAdapter and
TextTransfAdapter, zhangbw17/MV-Adapter at 08a61f3): the same weights give the same tokens to 1e-5.

The reference is plain tensor arithmetic in the authors' layout (sequence-first tokens, an additive -1e6
attention mask, q/k/v split per head by hand); it reads the weights from vtrlab's modules by name and shares
no code with them. Every weight is re-drawn at random first, so zero-initialised parts (W_up, FC2) take part.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vtrlab.model.context import AdapterContext
from vtrlab.model.methods.mv_adapter import MvAdapterKnobs, MvTextAdapter, MvVideoAdapter

VISUAL, TEXT, WIDTH, HEADS = 768, 512, 64, 2  # ViT-B/16 towers, the authors' d' and TRM heads
FRAMES, PATCHES, WORDS = 12, 196, 32


def quick_gelu(x):
    return x * torch.sigmoid(1.702 * x)


def layer_norm(x, weights, prefix):
    return F.layer_norm(x, x.shape[-1:], weights[f"{prefix}.weight"], weights[f"{prefix}.bias"], eps=1e-5)


def linear(x, weights, prefix, weight=None):
    weight = weights[f"{prefix}.weight"] if weight is None else weight
    bias = weights.get(f"{prefix}.bias")
    return x @ weight.T + (bias if bias is not None else 0)


def trm_block(x, weights, prefix, additive_mask):
    """The authors' AdapterTransBlock on x [L, N, E] (sequence first): pre-LN attention and QuickGELU MLP."""
    length, batch, width = x.shape
    head = width // HEADS
    h = layer_norm(x, weights, f"{prefix}.ln_1")
    qkv = h @ weights[f"{prefix}.attn.in_proj_weight"].T + weights[f"{prefix}.attn.in_proj_bias"]
    q, k, v = qkv.split(width, dim=-1)

    def per_head(t):  # [L, N, E] -> [N * heads, L, head]
        return t.reshape(length, batch * HEADS, head).transpose(0, 1)

    logits = per_head(q) @ per_head(k).transpose(1, 2) / head**0.5
    if additive_mask is not None:
        logits = logits + additive_mask
    attended = (logits.softmax(-1) @ per_head(v)).transpose(0, 1).reshape(length, batch, width)
    x = x + linear(attended, weights, f"{prefix}.attn.out_proj")
    h = layer_norm(x, weights, f"{prefix}.ln_2")
    return x + linear(quick_gelu(linear(h, weights, f"{prefix}.mlp.c_fc")), weights, f"{prefix}.mlp.c_proj")


def down_weight(weights, cmt_scale, mode):
    weight = weights["down.weight"]
    if cmt_scale is None:
        return weight
    return weight * cmt_scale[None, :] if mode == "down-in" else weight * cmt_scale[:, None]


def reference_video(hidden, mask, weights, scale=0.1, cmt_scale=None, cmt_mode="down-in", lnin=False):
    """The authors' VideoAdapter with temporal=['c'], pca=False: hidden [B*F, 1+P, D] (batch first, as
    open_clip's blocks see it) -> hidden + scale * delta."""
    batch, frames = mask.shape
    x = hidden.transpose(0, 1)  # [1+P, B*F, D], the authors' layout
    if lnin:
        x = layer_norm(x, weights, "ln_in")
    down = quick_gelu(x @ down_weight(weights, cmt_scale, cmt_mode).T + weights["down.bias"])
    cls_down = down[0].reshape(batch, frames, -1)
    patch_down = down[1:].reshape(down.shape[0] - 1, batch, frames, -1)
    patch_mean = patch_down.mean(dim=0)
    cc = weights["class_of_classes"].expand(batch, 1, -1)
    sequence = torch.cat([cc, cls_down, patch_mean], dim=1)
    sequence = sequence + weights["positional_embedding"][: sequence.shape[1]]
    sequence = layer_norm(sequence, weights, "ln").permute(1, 0, 2)
    valid = torch.cat([torch.ones(batch, 1), mask.float().repeat(1, 2)], dim=1)
    additive = ((1.0 - valid[:, None, :]) * -1000000.0).expand(-1, valid.shape[1], -1)
    out = quick_gelu(trm_block(sequence, weights, "trm.block", additive.repeat_interleave(HEADS, dim=0)))
    out = out.permute(1, 0, 2)
    cc_out, cls_out, patch_out = out[:, 0], out[:, 1 : frames + 1], out[:, frames + 1 :]
    calibrate_in = torch.cat(
        [cls_out + patch_out, linear(cc_out, weights, "calibrate.cc_proj")[:, None].expand_as(cls_out)], -1
    )
    alpha = linear(torch.relu(linear(calibrate_in, weights, "calibrate.fc1")), weights, "calibrate.fc2") + 1
    up_w, up_b = weights["up.weight"], weights["up.bias"]
    cls_up = torch.einsum("bfi,oi,bfi->bfo", alpha, up_w, cls_out) + up_b  # up(alpha_i * trm_cls_i)
    patch_up = torch.einsum("pbfi,oi->pbfo", patch_down, up_w) + up_b
    delta = torch.cat([cls_up.reshape(1, batch * frames, -1), patch_up.reshape(-1, batch * frames, up_w.shape[0])])
    return hidden + scale * delta.transpose(0, 1)


def reference_text(hidden, weights, scale=0.1, cmt_scale=None, cmt_mode="down-in", lnin=False):
    """The authors' TextTransfAdapter (attn_type='uni'): hidden [N, L, D] -> hidden + scale * delta."""
    x = hidden.transpose(0, 1)
    if lnin:
        x = layer_norm(x, weights, "ln_in")
    down = x @ down_weight(weights, cmt_scale, cmt_mode).T + weights["down.bias"]
    down = layer_norm(down + weights["positional_embedding"][: x.shape[0], None], weights, "ln")
    causal = torch.full((x.shape[0], x.shape[0]), float("-inf")).triu(1)
    out = quick_gelu(trm_block(down, weights, "trm.block", causal))
    return hidden + scale * linear(out, weights, "up").transpose(0, 1)


def randomised(module):
    """Every weight redrawn (zero-initialised ones too), so each takes part in the comparison."""
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, param in module.named_parameters():
            norm_weight = param.dim() == 1 and "ln" in name and name.endswith("weight")
            noise = torch.randn(param.shape, generator=generator)
            param.copy_(1 + 0.1 * noise if norm_weight else 0.05 * noise)
    return module


def video_case(knobs: MvAdapterKnobs, cmt_scale=None, seed=0):
    context = AdapterContext()
    adapter = randomised(MvVideoAdapter(VISUAL, knobs, context, "visual.10")).eval()
    generator = torch.Generator().manual_seed(seed)
    mask = torch.ones(2, FRAMES, dtype=torch.bool)
    mask[1, 7:] = False  # the second video has 7 real frames and 5 padded ones
    hidden = torch.randn(2 * FRAMES, 1 + PATCHES, VISUAL, generator=generator)
    context.frame_mask = mask
    if cmt_scale is not None:
        context.down_scales = {"visual.10": cmt_scale}
    with torch.no_grad():
        return adapter(hidden), hidden, mask, {n: p.detach() for n, p in adapter.named_parameters()}


@pytest.mark.parametrize(
    ("cmt_mode", "lnin"), [(None, False), ("down-in", False), ("down-out", False), ("down-in", True)]
)
def test_video_adapter_matches_the_authors_form(cmt_mode, lnin):
    knobs = MvAdapterKnobs(cmt_mode=cmt_mode or "down-in", lnin=lnin)
    scale = None
    if cmt_mode is not None:
        scale = torch.rand(VISUAL if cmt_mode == "down-in" else WIDTH, generator=torch.Generator().manual_seed(5)) + 0.5
    ours, hidden, mask, weights = video_case(knobs, scale)
    expected = reference_video(hidden, mask, weights, cmt_scale=scale, cmt_mode=knobs.cmt_mode, lnin=lnin)
    valid = mask.flatten()  # padded frames are masked in the TRM and excluded from every pooling
    torch.testing.assert_close(ours[valid][:, 0], expected[valid][:, 0], atol=1e-5, rtol=0)  # CLS tokens
    torch.testing.assert_close(ours[valid][:, 1:], expected[valid][:, 1:], atol=1e-5, rtol=0)  # patch tokens


def test_real_frames_ignore_what_padded_frames_hold():
    knobs = MvAdapterKnobs()
    _, hidden, mask, _ = video_case(knobs)
    context = AdapterContext(frame_mask=mask)
    adapter = randomised(MvVideoAdapter(VISUAL, knobs, context, "visual.0")).eval()
    noisy = hidden.clone()
    noisy[~mask.flatten()] = torch.randn_like(noisy[~mask.flatten()]) * 10
    with torch.no_grad():
        clean, changed = adapter(hidden), adapter(noisy)
    torch.testing.assert_close(clean[mask.flatten()], changed[mask.flatten()], atol=1e-5, rtol=0)


def test_local_context_knob_is_the_other_reading():
    """`cls_value="local-context"` up-projects alpha_i * (CLS_i + patchmean_i): CLS tokens differ from the
    authors' form, patch tokens do not."""
    ours, hidden, mask, weights = video_case(MvAdapterKnobs(cls_value="local-context"))
    expected = reference_video(hidden, mask, weights)
    valid = mask.flatten()
    assert float((ours[valid][:, 0] - expected[valid][:, 0]).abs().max()) > 1e-3
    torch.testing.assert_close(ours[valid][:, 1:], expected[valid][:, 1:], atol=1e-5, rtol=0)


@pytest.mark.parametrize(("cmt_mode", "lnin"), [(None, False), ("down-in", False), ("down-out", True)])
def test_text_adapter_matches_the_authors_form(cmt_mode, lnin):
    knobs = MvAdapterKnobs(cmt_mode=cmt_mode or "down-in", lnin=lnin)
    adapter = randomised(MvTextAdapter(TEXT, knobs, AdapterContext(), "text.11")).eval()
    scale = None
    if cmt_mode is not None:
        scale = torch.rand(TEXT if cmt_mode == "down-in" else WIDTH, generator=torch.Generator().manual_seed(6)) + 0.5
        adapter._context[0].down_scales = {"text.11": scale}
    hidden = torch.randn(3, WORDS, TEXT, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours = adapter(hidden)
    expected = reference_text(
        hidden, dict(adapter.named_parameters()), cmt_scale=scale, cmt_mode=knobs.cmt_mode, lnin=lnin
    )
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=0)
