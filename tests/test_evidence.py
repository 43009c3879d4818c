"""Evidence that training works and that the demo's benchmark tells methods apart: on the synthetic temporal
benchmark's demo size (512 test clips), with a tiny backbone pretrained on the synthetic image set and then
frozen, MV-Adapter beats zero-shot meanP and the order-blind bottleneck adapter on T2V R@1 by margins whose
paired 95% bootstrap intervals exclude zero, and the bottleneck (a sane recipe) does not fall below zero-shot.

The recipes are the quickstart sweep's fixed ones (`sweeps/quickstart.yaml`), trained in this process on one
thread, as `bench/synthetic_margin.py` runs them."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from vtrlab.data.synth import synth
from vtrlab.train.bootstrap import paired_difference, recall_interval
from vtrlab.train.local import recipe_test_ranks

pytestmark = pytest.mark.slow
SPEC = yaml.safe_load((Path(__file__).resolve().parents[1] / "sweeps" / "quickstart.yaml").read_text())


@pytest.fixture(scope="module")
def synth_demo(tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("synth") / "demo"
    synth(str(out), size="demo", seed=0)
    return str(out)


@pytest.fixture(scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def ranks_of(method: str, weights: str, data: str) -> torch.Tensor:
    """Test-split T2V ranks of `method` trained with the quickstart sweep's fixed recipe."""
    return recipe_test_ranks(method, SPEC["methods"][method], SPEC["train"], data, weights, seed=0)


def test_mv_adapter_beats_zero_shot_and_the_order_blind_bottleneck(pretrained_backbone, synth_demo, one_thread):
    # the images split is the same for every size (seeded alike), so the session's backbone fits the demo size
    ranks = {m: ranks_of(m, pretrained_backbone, synth_demo) for m in ("zero-shot", "bottleneck", "mv-adapter")}
    print("T2V R@1:", ", ".join(f"{m} {recall_interval(r, 1)}" for m, r in ranks.items()))
    assert all(len(r) == 512 for r in ranks.values())
    for baseline in ("zero-shot", "bottleneck"):
        diff = paired_difference(ranks["mv-adapter"], ranks[baseline], 1)
        assert diff.significant and diff.difference > 0, (baseline, diff)
    assert paired_difference(ranks["bottleneck"], ranks["zero-shot"], 1).high > 0  # not significantly below
