"""Reproducible on one machine: the same inputs give the same numbers, whatever the machine's core count.

The pretrained backbone is byte-identical across two pretrainings (seeded init and data order, a fixed
thread count), and a sweep run twice (Ray Tune + Optuna + ASHA, each trial a Ray Train run with a fixed
thread count) prints the same table: what `make demo` relies on for two runs to print the same comparison."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from servers import run_vtrlab
from vtrlab.train.pretrain import pretrain_backbone


def table_rows(stdout: str) -> list[str]:
    """The sweep table's rows and the "best T2V R@1" line (the title's wall seconds differ by design)."""
    return [line for line in stdout.splitlines() if line.startswith("│") or line.startswith("best T2V R@1")]


def test_pretraining_writes_the_same_weights_twice(synth_small, tmp_path):
    threads = torch.get_num_threads()
    first = pretrain_backbone(synth_small, tmp_path / "a.safetensors", epochs=2, show_progress=False)
    torch.set_num_threads(1)  # the caller's thread count does not leak in: pretraining fixes its own
    try:
        second = pretrain_backbone(synth_small, tmp_path / "b.safetensors", epochs=2, show_progress=False)
    finally:
        torch.set_num_threads(threads)
    assert torch.get_num_threads() == threads
    a, b = load_file(first), load_file(second)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_a_sweep_run_twice_prints_the_same_table(workflow, tmp_path):
    """The session's workflow sweep (zero-shot, bottleneck, two MV-Adapter trials under Optuna + ASHA), run
    again from scratch in a fresh home: every trial's epochs, metrics and end state are the same."""
    env = {**workflow["env"], "VTRLAB_HOME": str(tmp_path / "home")}
    again = run_vtrlab(["sweep", str(workflow["spec"])], env)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-5000:]
    first, second = table_rows(workflow["result"].stdout), table_rows(again.stdout)
    assert len(first) >= 4, workflow["result"].stdout
    assert first == second, "\n".join(["first run:", *first, "second run:", *second])
