"""MV-Adapter's initialisation: the authors' (from the tower's width d; CMT factor zero) and the library's."""

from __future__ import annotations

import pytest
import torch

from model_helpers import tiny_model
from vtrlab.model.context import AdapterContext
from vtrlab.model.methods.mv_adapter import CrossModalityTying, MvAdapterKnobs, MvTextAdapter, MvVideoAdapter

VISUAL, TEXT = 768, 512


def std(tensor: torch.Tensor) -> float:
    return float(tensor.detach().std())


def test_authors_init_draws_the_trm_from_the_towers_width():
    torch.manual_seed(0)
    knobs = MvAdapterKnobs()
    for adapter_cls, dim in ((MvVideoAdapter, VISUAL), (MvTextAdapter, TEXT)):
        adapter = adapter_cls(dim, knobs, AdapterContext(), "x.0")
        block = adapter.trm.block
        assert std(block.attn.in_proj_weight) == pytest.approx(dim**-0.5, rel=0.05)
        for weight in (block.attn.out_proj.weight, block.mlp.c_fc.weight, block.mlp.c_proj.weight):
            assert std(weight) == pytest.approx((2 * dim) ** -0.5, rel=0.05)
        assert torch.count_nonzero(adapter.down.bias) == 0
        assert torch.count_nonzero(adapter.up.weight) == 0 and torch.count_nonzero(adapter.up.bias) == 0
    video = MvVideoAdapter(VISUAL, knobs, AdapterContext(), "visual.0")
    assert std(video.down.weight) == pytest.approx((1 / 3) ** 0.5 * VISUAL**-0.5, rel=0.05)  # Kaiming-uniform
    assert std(video.class_of_classes) == pytest.approx(64**-0.5, rel=0.3)
    text = MvTextAdapter(TEXT, knobs, AdapterContext(), "text.0")
    assert std(text.down.weight) == pytest.approx((2 * TEXT) ** -0.5, rel=0.05)


def test_library_init_keeps_pytorch_defaults():
    torch.manual_seed(0)
    adapter = MvVideoAdapter(VISUAL, MvAdapterKnobs(init="library"), AdapterContext(), "visual.0")
    width = 64  # xavier-uniform over the TRM's own in-projection [3 * 64, 64]
    assert std(adapter.trm.block.attn.in_proj_weight) == pytest.approx((2 / (width + 3 * width)) ** 0.5, rel=0.05)
    assert torch.count_nonzero(adapter.down.bias) > 0


def test_cmt_init_authors_starts_at_the_maps_bias_identity_at_one():
    torch.manual_seed(0)
    authors = CrossModalityTying([(10, 10), (11, 11)], 32, VISUAL, 64, init="authors")
    assert torch.count_nonzero(authors.factors) == 0
    with torch.no_grad():
        scales = authors()
    torch.testing.assert_close(scales["visual.10"], authors.visual_maps[0].bias, atol=0, rtol=0)
    assert float(scales["text.11"].abs().max()) <= 32**-0.5  # PyTorch's Linear bias: U(-1/sqrt(32), 1/sqrt(32))
    identity = CrossModalityTying([(10, 10)], 32, VISUAL, 64, init="identity")
    assert all(torch.equal(scale, torch.ones_like(scale)) for scale in identity().values())


def test_cmt_factor_receives_gradient_from_the_authors_start():
    """With the factor at zero, training still moves it: the maps' weights carry its gradient."""
    encoder = tiny_model("mv-adapter", width=16, trm_heads=2, cmt_factor_dim=8)
    scales = encoder.cmt()
    sum(scale.sum() for scale in scales.values()).backward()
    assert float(encoder.cmt.factors.grad.abs().sum()) > 0
