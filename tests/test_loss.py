"""Symmetric InfoNCE: single-process properties, same-video masking against a brute-force reference, and a
real 2-process gloo all-gather check (twins across ranks masked too)."""

from __future__ import annotations

import math
import socket
import time
from datetime import timedelta
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from vtrlab.errors import InputError
from vtrlab.train.loss import (
    ddp_loss_scale,
    gather_with_local_grad,
    infonce_from_logits,
    same_video_mask,
    symmetric_infonce,
)

# --------------------------------------------------------------------------- single process


def test_aligned_embeddings_with_large_scale_give_near_zero_loss() -> None:
    emb = torch.eye(8)
    assert symmetric_infonce(emb, emb, 100.0).item() < 1e-6


def test_uniform_logits_give_log_n() -> None:
    for n in (1, 3, 16):
        assert infonce_from_logits(torch.zeros(n, n)).item() == pytest.approx(math.log(n), abs=1e-6)
    emb = torch.ones(5, 4) / 2  # every pair has the same similarity
    assert symmetric_infonce(emb, emb, torch.tensor(10.0)).item() == pytest.approx(math.log(5), abs=1e-6)


def test_loss_is_symmetric_in_text_and_video() -> None:
    gen = torch.Generator().manual_seed(0)
    text = F.normalize(torch.randn(7, 16, generator=gen), dim=-1)
    video = F.normalize(torch.randn(7, 16, generator=gen), dim=-1)
    swapped = symmetric_infonce(video, text, 20.0)
    assert symmetric_infonce(text, video, 20.0).item() == pytest.approx(swapped.item(), abs=1e-6)
    logits = torch.randn(6, 6, generator=gen)
    assert infonce_from_logits(logits).item() == pytest.approx(infonce_from_logits(logits.T).item(), abs=1e-6)


def test_matches_explicit_cross_entropy_formula() -> None:
    gen = torch.Generator().manual_seed(1)
    text, video = torch.randn(5, 8, generator=gen), torch.randn(5, 8, generator=gen)
    logits = 3.0 * text @ video.T
    target = torch.arange(5)
    expected = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
    assert symmetric_infonce(text, video, 3.0).item() == pytest.approx(expected.item(), abs=1e-6)


def test_labels_permute_the_pairs() -> None:
    gen = torch.Generator().manual_seed(2)
    logits = torch.randn(6, 6, generator=gen)
    perm = torch.randperm(6, generator=gen)
    # Pair (i, perm[i]) in `logits` is pair (i, i) in the column-permuted matrix.
    permuted = logits[:, perm]
    assert permuted[torch.arange(6), torch.arange(6)].tolist() == logits[torch.arange(6), perm].tolist()
    assert infonce_from_logits(logits, perm).item() == pytest.approx(infonce_from_logits(permuted).item(), abs=1e-6)


def test_bf16_autocast_still_computes_in_float32() -> None:
    gen = torch.Generator().manual_seed(3)
    text = F.normalize(torch.randn(6, 32, generator=gen), dim=-1)
    video = F.normalize(torch.randn(6, 32, generator=gen), dim=-1)
    reference = symmetric_infonce(text, video, 100.0)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        loss = symmetric_infonce(text, video, 100.0)
        loss_bf16_inputs = symmetric_infonce(text.bfloat16(), video.bfloat16(), 100.0)
    assert loss.dtype == torch.float32 and loss_bf16_inputs.dtype == torch.float32
    assert loss.item() == pytest.approx(reference.item(), abs=1e-6)


def test_without_process_group_nothing_is_gathered() -> None:
    x = torch.randn(3, 4)
    assert gather_with_local_grad(x) is x
    assert ddp_loss_scale() == 1


# --------------------------------------------------------------------------- pairs of the same video


def _brute_force_masked(logits: torch.Tensor, keys: list[int]) -> torch.Tensor:
    """Symmetric InfoNCE where pair i's negatives are only the pairs of OTHER videos (loops, by definition)."""
    n = len(keys)
    t2v, v2t = [], []
    for i in range(n):
        cols = [j for j in range(n) if j == i or keys[j] != keys[i]]
        t2v.append(torch.logsumexp(logits[i, cols], 0) - logits[i, i])
        v2t.append(torch.logsumexp(logits[cols, i], 0) - logits[i, i])
    return (torch.stack(t2v).mean() + torch.stack(v2t).mean()) / 2


_TWIN_KEYS = [3, 7, 3, -2, 7, 3, 11, 5]  # video 3 three times, video 7 twice


def test_same_video_mask_marks_other_pairs_of_a_video() -> None:
    mask = same_video_mask(torch.tensor(_TWIN_KEYS))
    expected = [[i != j and a == b for j, b in enumerate(_TWIN_KEYS)] for i, a in enumerate(_TWIN_KEYS)]
    assert mask.dtype == torch.bool and mask.tolist() == expected


def test_twins_are_neither_negatives_nor_positives() -> None:
    gen = torch.Generator().manual_seed(5)
    text = F.normalize(torch.randn(8, 16, generator=gen), dim=-1).requires_grad_()
    video = F.normalize(torch.randn(8, 16, generator=gen), dim=-1)
    keys = torch.tensor(_TWIN_KEYS)
    loss = symmetric_infonce(text, video, 20.0, video_keys=keys)
    reference = _brute_force_masked(20.0 * text @ video.T, _TWIN_KEYS)
    assert loss.item() == pytest.approx(reference.item(), abs=1e-6)
    assert loss.item() != pytest.approx(symmetric_infonce(text, video, 20.0).item(), abs=1e-4)
    (grad,) = torch.autograd.grad(loss, text)
    (ref_grad,) = torch.autograd.grad(reference, text)
    assert torch.isfinite(grad).all() and torch.allclose(grad, ref_grad, atol=1e-6)
    # the same through infonce_from_logits with an explicit ignore mask, and under bf16 autocast
    logits = 20.0 * text.detach() @ video.T
    assert infonce_from_logits(logits, ignore=same_video_mask(keys)).item() == pytest.approx(reference.item(), abs=1e-6)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        assert symmetric_infonce(text, video, 20.0, video_keys=keys).item() == pytest.approx(loss.item(), abs=1e-6)


def test_without_twins_masking_changes_nothing() -> None:
    """Distinct videos: exactly CLIP4Clip's loss (no twin, nothing masked)."""
    gen = torch.Generator().manual_seed(6)
    text, video = torch.randn(6, 8, generator=gen), torch.randn(6, 8, generator=gen)
    keys = torch.tensor([10, -4, 2**62, 0, 7, 9])
    assert torch.equal(symmetric_infonce(text, video, 3.0, video_keys=keys), symmetric_infonce(text, video, 3.0))


def test_ignore_never_removes_the_positives() -> None:
    logits = torch.randn(4, 4, generator=torch.Generator().manual_seed(7))
    everything = torch.ones(4, 4, dtype=torch.bool)  # only the positives survive: loss 0
    assert infonce_from_logits(logits, ignore=everything).item() == pytest.approx(0.0, abs=1e-6)
    perm = torch.tensor([2, 0, 3, 1])
    assert infonce_from_logits(logits, perm, ignore=everything).item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("method", ["zero-shot", "rap"])
def test_contrastive_loss_masks_twins_by_default(method) -> None:
    """The training step's loss: dual encoders (gathered path) and text-conditioned heads (local path)."""
    from model_helpers import tiny_model, video_batch
    from vtrlab.train.step import contrastive_loss, unwrap

    knobs = {"selection": "text-conditioned", "rank": 4, "max_frames": 8} if method == "rap" else {}
    model = tiny_model(method, **knobs).eval()
    frames, mask, tokens = video_batch(batch=4)
    keys = torch.tensor([1, 2, 1, 3])
    with torch.no_grad():
        text_emb, video_emb = model(frames, mask, tokens)
        encoder = unwrap(model)
        logits = encoder.logit_scale() * encoder.similarity(text_emb, video_emb)
        masked = contrastive_loss(model, frames, mask, tokens, keys)
        plain = contrastive_loss(model, frames, mask, tokens)
        assert masked.item() == pytest.approx(_brute_force_masked(logits.float(), keys.tolist()).item(), abs=1e-5)
        assert plain.item() == pytest.approx(infonce_from_logits(logits).item(), abs=1e-5)
        assert contrastive_loss(model, frames, mask, tokens, keys, mask_same_video=False).item() == plain.item()


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: infonce_from_logits(torch.zeros(3)), "2-D"),
        (lambda: infonce_from_logits(torch.zeros(2, 3)), "square"),
        (lambda: infonce_from_logits(torch.zeros(0, 0)), "no rows"),
        (lambda: infonce_from_logits(torch.zeros(2, 3), torch.tensor([0])), "2 entries"),
        (lambda: infonce_from_logits(torch.zeros(2, 3), torch.tensor([0.0, 1.0])), "integer"),
        (lambda: infonce_from_logits(torch.zeros(2, 3), torch.tensor([0, 3])), r"\[0, 3\)"),
        (lambda: symmetric_infonce(torch.zeros(2, 4), torch.zeros(3, 4), 1.0), "same shape"),
        (lambda: symmetric_infonce(torch.zeros(4), torch.zeros(4), 1.0), "2-D"),
        (lambda: symmetric_infonce(torch.zeros(2, 4), torch.zeros(2, 4), 1.0, torch.zeros(3)), "one per pair"),
        (lambda: infonce_from_logits(torch.zeros(2, 2), ignore=torch.zeros(2, 3, dtype=torch.bool)), "shape"),
        (lambda: same_video_mask(torch.zeros(2, 2)), "1-D"),
    ],
)
def test_bad_input_raises_input_error(call, match) -> None:
    with pytest.raises(InputError, match=match):
        call()


# --------------------------------------------------------------------------- two processes (gloo)

_WORLD = 2
_GLOBAL_BATCH = 8
_GLOBAL_KEYS = [4, 1, 9, 1, 4, 6, 9, 2]  # videos 4 and 9 have a pair on each rank; video 1 twice on rank 0
_PROCESS_TIMEOUT_S = 60.0


def _problem() -> tuple[torch.nn.Linear, torch.nn.Parameter, torch.Tensor, torch.Tensor]:
    """A shared linear layer, a learnable log logit scale and fixed inputs (same on every process)."""
    gen = torch.Generator().manual_seed(1234)
    layer = torch.nn.Linear(6, 5)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(5, 6, generator=gen))
        layer.bias.copy_(torch.randn(5, generator=gen))
    log_scale = torch.nn.Parameter(torch.tensor(math.log(10.0)))
    text_in = torch.randn(_GLOBAL_BATCH, 6, generator=gen)
    video_in = torch.randn(_GLOBAL_BATCH, 6, generator=gen)
    return layer, log_scale, text_in, video_in


def _loss_and_grads(rows: slice, masked: bool = False) -> tuple[torch.Tensor, list[torch.Tensor]]:
    layer, log_scale, text_in, video_in = _problem()
    text = F.normalize(layer(text_in[rows]), dim=-1)
    video = F.normalize(layer(video_in[rows]), dim=-1)
    keys = torch.tensor(_GLOBAL_KEYS)[rows] if masked else None
    loss = symmetric_infonce(text, video, log_scale.exp(), video_keys=keys)
    loss.backward()
    return loss.detach(), [layer.weight.grad, layer.bias.grad, log_scale.grad]


def _ddp_worker(rank: int, world: int, port: int, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=world,
        timeout=timedelta(seconds=30),
    )
    try:
        local = _GLOBAL_BATCH // world
        result: dict = {"scale": ddp_loss_scale()}
        for masked in (False, True):
            loss, grads = _loss_and_grads(slice(rank * local, (rank + 1) * local), masked)
            summed = [g.clone() for g in grads]
            for g in summed:
                dist.all_reduce(g, op=dist.ReduceOp.SUM)
            result[masked] = {"loss": loss, "local_grads": grads, "summed_grads": summed}
        torch.save(result, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.timeout(120)
def test_two_process_gloo_matches_single_process_full_batch(tmp_path: Path) -> None:
    context = mp.start_processes(
        _ddp_worker,
        args=(_WORLD, _free_port(), str(tmp_path)),
        nprocs=_WORLD,
        join=False,
        start_method="spawn",
    )
    deadline = time.monotonic() + _PROCESS_TIMEOUT_S
    try:
        while not context.join(timeout=1.0):  # raises ProcessRaisedException if a worker fails
            if time.monotonic() > deadline:
                pytest.fail(f"gloo workers did not finish within {_PROCESS_TIMEOUT_S:.0f} s")
    finally:
        for proc in context.processes:
            if proc.is_alive():
                proc.terminate()
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()
                proc.join()

    results = [torch.load(tmp_path / f"rank{rank}.pt") for rank in range(_WORLD)]
    layer, log_scale, text_in, video_in = _problem()
    with torch.no_grad():
        text, video = F.normalize(layer(text_in), dim=-1), F.normalize(layer(video_in), dim=-1)
        brute_force = _brute_force_masked(log_scale.exp() * text @ video.T, _GLOBAL_KEYS)

    for masked in (False, True):
        full_loss, full_grads = _loss_and_grads(slice(None), masked)
        ranks = [res[masked] for res in results]
        for res in ranks:
            assert torch.allclose(res["loss"], full_loss, atol=1e-6, rtol=0)
            for summed, full in zip(res["summed_grads"], full_grads, strict=True):
                assert torch.allclose(summed, full, atol=1e-5, rtol=0)
        assert torch.equal(ranks[0]["loss"], ranks[1]["loss"])  # identical on every rank
        # Each rank's own gradient is a genuine share, not the full gradient.
        assert not torch.allclose(ranks[0]["local_grads"][0], full_grads[0], atol=1e-5)
    assert all(res["scale"] == _WORLD for res in results)
    # the gathered keys mask the twins across ranks: the brute-force reference over the global batch
    assert results[0][True]["loss"].item() == pytest.approx(brute_force.item(), abs=1e-6)
    assert results[0][True]["loss"].item() != pytest.approx(results[0][False]["loss"].item(), abs=1e-4)
