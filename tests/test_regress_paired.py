"""Regression verdicts with the paired bootstrap: a drop past the tolerance regresses only when it is larger
than chance on the same queries; runs without per-query ranks fall back to the tolerance and say so."""

from __future__ import annotations

import torch

from vtrlab.regress.baselines import Baseline, EntryResult, judge
from vtrlab.regress.paired import attach_paired_tests, query_scores
from vtrlab.tracking.client import Tracker
from vtrlab.tracking.records import RunState
from vtrlab.train.query_ranks import RANKS_ARTIFACT, QueryRanks


def ranks_run(tracker: Tracker, name: str, right: torch.Tensor, tags: dict[str, str] | None = None) -> str:
    """A finished run whose T2V R@1 is right on the queries where `right` is True (rank 1, else rank 5)."""
    run, _ = tracker.find_or_create_run("paired", key=name, name=name, tags=tags or {})
    t2v = torch.where(right, 1, 5)
    tracker.log_text(run.run_id, QueryRanks(t2v, t2v[:10], "synthetic", "test").to_json(), RANKS_ARTIFACT)
    tracker.log_metrics(run.run_id, {"t2v_R1": float(right.double().mean() * 100)})
    tracker.end_run(run.run_id, RunState.FINISHED)
    return run.run_id


def entry(values: list[float], run_ids: list[str], champion: Baseline, drop: float) -> EntryResult:
    result = EntryResult("e", "synthetic", "mv-adapter", "f", list(range(len(values))), values, run_ids)
    result.champion, result.allowed_drop = champion, drop
    return result


def queries(right: int, total: int = 400) -> torch.Tensor:
    mask = torch.zeros(total, dtype=torch.bool)
    mask[:right] = True
    return mask


def test_a_drop_past_the_tolerance_that_chance_explains_passes_and_a_real_one_regresses(tmp_path):
    tracker = Tracker(f"sqlite:///{tmp_path}/mlflow.db")
    champion_run = ranks_run(tracker, "champion", queries(100))  # 25.0
    champion = Baseline("champion", 25.0, True, "model v1", run_id=champion_run)

    slightly = queries(100)  # 24.0: one point below, losing 12 of the champion's queries and winning 8 others
    slightly[88:100], slightly[100:108] = False, True
    close = entry([24.0], [ranks_run(tracker, "close", slightly)], champion, drop=0.5)
    attach_paired_tests(tracker, close, "t2v_R1")
    assert close.champion.test is not None and not close.champion.test["significant"]
    assert close.interval["queries"] == 400 and close.interval["low"] < 24.0 < close.interval["high"]
    assert judge(close).verdict == "pass" and "within chance" in close.reason

    far = entry([15.0], [ranks_run(tracker, "far", queries(60))], champion, drop=0.5)  # 40 queries lost
    attach_paired_tests(tracker, far, "t2v_R1")
    assert judge(far).verdict == "regression"
    assert far.champion.test["significant"] and far.champion.test["difference"] == -10.0
    assert "paired difference -10.00" in far.reason


def test_seeds_are_averaged_per_query_before_the_test(tmp_path):
    tracker = Tracker(f"sqlite:///{tmp_path}/mlflow.db")
    seeds = [ranks_run(tracker, f"seed{s}", queries(n)) for s, n in enumerate((80, 120))]
    scores = query_scores(tracker, seeds, "t2v_R1")
    assert scores is not None and float(scores.scores.mean() * 100) == 25.0
    assert set(scores.scores[:80].tolist()) == {1.0} and set(scores.scores[80:120].tolist()) == {0.5}


def test_without_ranks_or_for_a_rank_metric_the_tolerance_alone_decides(tmp_path):
    tracker = Tracker(f"sqlite:///{tmp_path}/mlflow.db")
    champion = Baseline("champion", 25.0, True, "model v1", run_id=None)  # e.g. registered before ranks were kept
    result = entry([24.0], [ranks_run(tracker, "entry", queries(96))], champion, drop=0.5)
    attach_paired_tests(tracker, result, "t2v_R1")
    assert result.champion.test is None
    assert judge(result).verdict == "regression" and "tolerance only" in result.reason
    assert query_scores(tracker, result.run_ids, "t2v_MnR") is None  # not a recall: no paired test
