"""The two training recipes: BertAdam, clipping modes, schedules and the loss over ranks, against references
written here from the authors' optimizer/bert_adam.py, optimizer/build.py and runner (zhangbw17/MV-Adapter)."""

from __future__ import annotations

import math

import pytest
import torch

from model_helpers import tiny_model, video_batch
from vtrlab.config import TrainSpec, validate_model
from vtrlab.errors import ConfigError
from vtrlab.train import step as step_module
from vtrlab.train.bert_adam import BertAdam
from vtrlab.train.schedule import warmup_cosine
from vtrlab.train.step import RECIPES, clip_gradients, make_optimizer, recipe_for, training_step


def authors_warmup_cosine(x: float, warmup: float) -> float:
    return x / warmup if x < warmup else 0.5 * (1.0 + math.cos(math.pi * x))


def reference_bert_adam(params, grads_per_step, groups, total, warmup=0.1, betas=(0.9, 0.98), eps=1e-6):
    """The authors' loop: a global-norm clip over all parameters (their runner), then per tensor in step():
    clip to norm 1, m and v without bias correction, update += wd * p, lr scheduled by step / t_total."""
    params = [p.clone() for p in params]
    state = [(torch.zeros_like(p), torch.zeros_like(p)) for p in params]
    for step, grads in enumerate(grads_per_step):
        grads = [g.clone() for g in grads]
        total_norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
        grads = [g * min(1.0, float(1.0 / (total_norm + 1e-6))) for g in grads]
        for i, (p, g) in enumerate(zip(params, grads, strict=True)):
            g = g * min(1.0, float(1.0 / (torch.linalg.vector_norm(g) + 1e-6)))
            m, v = state[i]
            m.mul_(betas[0]).add_(g, alpha=1 - betas[0])
            v.mul_(betas[1]).addcmul_(g, g, value=1 - betas[1])
            update = m / (v.sqrt() + eps)
            lr, wd = groups[i]
            if wd > 0:
                update = update + wd * p
            p.sub_(lr * authors_warmup_cosine(step / total, warmup) * update)
    return params


def test_bert_adam_recipe_matches_the_authors_loop():
    generator = torch.Generator().manual_seed(0)
    shapes = [(4, 3), (3,), (5, 2)]
    start = [torch.randn(shape, generator=generator) for shape in shapes]
    grads = [
        [torch.randn(shape, generator=generator) * scale for shape in shapes] for scale in (0.1, 3.0, 0.5, 2.0, 1.0)
    ]
    params = [torch.nn.Parameter(p.clone()) for p in start]
    settings = [(5e-2, 0.2), (5e-2, 0.0), (1e-2, 0.2)]
    optimizer = BertAdam(
        [{"params": [p], "lr": lr, "weight_decay": wd} for p, (lr, wd) in zip(params, settings, strict=True)],
        betas=(0.9, 0.98),
        eps=1e-6,
    )
    scheduler = warmup_cosine(optimizer, total_steps=len(grads), warmup_ratio=0.1, over="whole-run")
    for step_grads in grads:
        for p, g in zip(params, step_grads, strict=True):
            p.grad = g.clone()
        clip_gradients(params, 1.0, RECIPES["bertadam"].grad_clip)
        optimizer.step()
        optimizer.zero_grad()
        scheduler.step()
    expected = reference_bert_adam(start, grads, settings, total=len(grads))
    for ours, theirs in zip(params, expected, strict=True):
        torch.testing.assert_close(ours.detach(), theirs, atol=1e-6, rtol=1e-6)


def test_whole_run_schedule_is_clip4clips_warmup_cosine():
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=1.0)
    scheduler = warmup_cosine(optimizer, total_steps=100, warmup_ratio=0.1, over="whole-run")
    factors = []
    for _ in range(100):
        factors.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert factors[0] == 0.0 and factors[5] == pytest.approx(0.5)
    assert factors[10] == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.1)))  # 0.976, not 1
    assert factors[99] == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.99)))
    post = warmup_cosine(torch.optim.SGD([param], lr=1.0), total_steps=100, warmup_ratio=0.1)
    assert post.get_last_lr()[0] == pytest.approx(0.1)  # vtrlab's: (step + 1) / warm-up steps, then 1 -> 0


@pytest.mark.parametrize("mode", ["global", "per-tensor", "global-then-per-tensor"])
def test_clipping_modes(mode):
    params = [torch.nn.Parameter(torch.zeros(n)) for n in (3, 5, 7)]
    for p, scale in zip(params, (0.1, 4.0, 2.0), strict=True):
        p.grad = torch.full_like(p, scale)
    before = [p.grad.clone() for p in params]
    clip_gradients(params, 1.0, mode)
    norms = [float(p.grad.norm()) for p in params]
    total = math.sqrt(sum(n * n for n in norms))
    if mode == "per-tensor":
        assert norms[0] == pytest.approx(float(before[0].norm()))  # small gradients are left alone
        assert norms[1] == pytest.approx(1.0, abs=1e-5) and norms[2] == pytest.approx(1.0, abs=1e-5)
    else:
        assert total == pytest.approx(1.0, abs=1e-5)
        ratios = [float(p.grad[0] / b[0]) for p, b in zip(params, before, strict=True)]
        assert max(ratios) == pytest.approx(min(ratios), rel=1e-4)  # one factor for all: directions kept


def test_bertadam_groups_are_the_authors():
    encoder = tiny_model("mv-adapter", width=16, cmt_factor_dim=8)
    optimizer = make_optimizer(encoder, optimizer="bertadam", weight_decay=0.2)
    assert isinstance(optimizer, BertAdam)
    names = {id(p): n for n, p in encoder.named_parameters()}
    decay = {names[id(p)] for g in optimizer.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    no_decay = {names[id(p)] for g in optimizer.param_groups if g["weight_decay"] == 0 for p in g["params"]}
    assert any(n.endswith("vtr_adapter.ln.weight") for n in decay)  # adapter norms decay ("bias" not in the name)
    assert any(n.endswith("vtr_adapter.positional_embedding") for n in decay)
    assert "cmt.factors" in decay
    assert all("bias" in n for n in no_decay) and any(n.endswith("vtr_adapter.down.bias") for n in no_decay)
    assert "clip.visual.transformer.resblocks.0.mlp.c_fc.bias" in decay  # CLIP biases: their config's 0.2
    assert isinstance(make_optimizer(encoder), torch.optim.AdamW)


def _gradient_after_step(monkeypatch, recipe_name: str) -> torch.Tensor:
    monkeypatch.setattr(step_module, "ddp_loss_scale", lambda: 4)  # as under DDP with 4 ranks
    encoder = tiny_model("bottleneck", width=8)
    param = next(p for p in encoder.parameters() if p.requires_grad)
    captured = {}

    class Capture(torch.optim.SGD):
        def step(self, closure=None):
            captured["grad"] = param.grad.clone()

    optimizer = Capture([p for p in encoder.parameters() if p.requires_grad], lr=0.0)
    training_step(encoder, optimizer, *video_batch(), max_grad_norm=None, recipe=recipe_for(recipe_name))
    return captured["grad"]


def test_adamw_recipe_multiplies_the_loss_by_the_world_size_bertadam_averages(monkeypatch):
    summed, averaged = _gradient_after_step(monkeypatch, "adamw"), _gradient_after_step(monkeypatch, "bertadam")
    torch.testing.assert_close(summed, 4 * averaged, atol=1e-7, rtol=1e-5)


def test_bert_adam_state_round_trips_for_resume():
    encoder = tiny_model("bottleneck", width=8)
    optimizer = make_optimizer(encoder, lr={"method": 1e-2}, optimizer="bertadam")
    training_step(encoder, optimizer, *video_batch(), recipe=RECIPES["bertadam"])
    restored = make_optimizer(encoder, lr={"method": 1e-2}, optimizer="bertadam")
    restored.load_state_dict(optimizer.state_dict())
    for p in encoder.parameters():
        if p.requires_grad:
            torch.testing.assert_close(restored.state[p]["exp_avg"], optimizer.state[p]["exp_avg"])


def test_train_spec_names_an_unknown_optimizer_or_clip_mode():
    base = {"benchmark": "synthetic", "method": "mv-adapter", "data": "/tmp/x"}
    with pytest.raises(ConfigError, match=r"spec\.yaml: optimizer: Input should be 'adamw' or 'bertadam'.*'sgd'"):
        validate_model(TrainSpec, {**base, "optimizer": "sgd"}, "spec.yaml")
    with pytest.raises(ConfigError, match=r"spec\.yaml: grad_clip: Input should be 'global', 'per-tensor' or"):
        validate_model(TrainSpec, {**base, "grad_clip": "layer"}, "spec.yaml")
    spec = validate_model(TrainSpec, {**base, "optimizer": "bertadam"}, "spec.yaml")
    assert recipe_for(spec.optimizer, spec.grad_clip) == RECIPES["bertadam"]
    assert recipe_for("bertadam", "per-tensor").grad_clip == "per-tensor"
