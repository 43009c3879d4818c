"""`vtrlab reproduce`: the interval over seeds, the paper's row beside it, and an end-to-end run of the
protocol on the synthetic benchmark (real Ray, MLflow store, shards)."""

from __future__ import annotations

import json
import os

import pytest
import yaml
from scipy.stats import t

from servers import run_vtrlab
from vtrlab.reproduce import ReproducedMetric, reported_row, seed_interval


def test_seed_interval_is_students_t_over_seeds():
    mean, low, high = seed_interval([40.0, 42.0, 44.0])
    half = t.ppf(0.975, 2) * 2.0 / 3**0.5
    assert mean == 42.0 and low == pytest.approx(42.0 - half) and high == pytest.approx(42.0 + half)
    assert seed_interval([5.0]) == (5.0, 5.0, 5.0)


def test_a_paper_value_outside_the_interval_is_marked():
    assert ReproducedMetric("t2v_R1", [1, 2], 1.5, 1.0, 2.0, 46.2).outside is True
    assert ReproducedMetric("t2v_R1", [46, 47], 46.5, 45.0, 48.0, 46.2).outside is False
    assert ReproducedMetric("t2v_R1", [1, 2], 1.5, 1.0, 2.0, None).outside is None


def test_the_papers_own_rows_are_found():
    assert reported_row("mv-adapter", "mv-adapter", "msrvtt").metrics()["t2v_R1"] == 46.2
    assert reported_row("rap", "rap", "msrvtt").metrics()["t2v_R1"] == 44.8
    assert reported_row("mv-adapter", "mv-adapter", "synthetic") is None


def test_reproduce_refuses_a_benchmark_without_data_before_starting(tmp_path):
    env = {**os.environ, "VTRLAB_HOME": str(tmp_path / "home"), "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/m.db"}
    env.pop("RAY_ADDRESS", None)
    result = run_vtrlab(["reproduce", "--paper", "mv-adapter", "--benchmark", "msrvtt"], env, timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "paper.yaml" in result.stderr and "s3://vtrlab-data/msrvtt" in result.stderr
    assert not (tmp_path / "home" / "reproduce").exists()


@pytest.mark.slow
def test_reproduce_runs_the_protocol_over_seeds_end_to_end(synth_small, pretrained_backbone, tmp_path, capsys):
    spec = {
        "name": "protocol",
        "backbone": "vtr-tiny",
        "weights": pretrained_backbone,
        "benchmarks": ["synthetic"],
        "data": {"synthetic": synth_small},
        "seeds": [0, 42],
        "train": {"epochs": 2, "batch_size": 32, "epoch_batches": 3, "eval_batch_size": 64},
        "per_benchmark": {"synthetic": {"methods": {"mv-adapter": {"train": {"lr": 2e-3}}}}},
        "methods": {"mv-adapter": {"knobs": {"width": 16}, "search": {"width": {"choice": [16, 32]}}}},
        "budget": {"max_concurrent": 1},
    }
    path = tmp_path / "protocol.yaml"
    path.write_text(yaml.safe_dump(spec))
    env = {**os.environ, "VTRLAB_HOME": str(tmp_path / "home"), "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/m.db"}
    env.pop("RAY_ADDRESS", None)
    args = ["reproduce", "--paper", "mv-adapter", "--benchmark", "synthetic", "--spec", str(path), "--json"]
    result = run_vtrlab(args, env, timeout=1500)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    report = json.loads(result.stdout)
    assert report["seeds"] == [0, 42] and len(report["run_ids"]) == 2 and report["reference"] is None
    by_metric = {m["metric"]: m for m in report["metrics"]}
    r1 = by_metric["t2v_R1"]
    assert len(r1["values"]) == 2 and r1["low"] <= r1["mean"] <= r1["high"] and r1["outside"] is None
    # the table the command prints without --json, from the same result (a second run would train again)
    from vtrlab.reproduce import ReproducedMetric, Reproduction
    from vtrlab.reproduce_cli import print_reproduction

    metrics = [ReproducedMetric(**{k: v for k, v in m.items() if k != "outside"}) for m in report["metrics"]]
    print_reproduction(Reproduction(**{**report, "metrics": metrics}))
    printed = capsys.readouterr().out
    assert "95% interval over seeds" in printed and "the paper reports no row for this benchmark" in printed
