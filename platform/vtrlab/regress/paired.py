"""The paired test behind a regression verdict: an entry's per-query hits (averaged over its seeds) against a
baseline's hits on the same queries, read from the runs' `eval/ranks.json` (`vtrlab.train.query_ranks`).

A recall metric (`t2v_R1`, `v2t_R5`, ...) gets the test; a rank or sum metric (MdR, MnR, rsum) and runs
without ranks (logged before vtrlab kept them) are judged on the tolerance alone, and the report says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from vtrlab.regress.baselines import Baseline, EntryResult
from vtrlab.tracking.client import Tracker, tag_filter
from vtrlab.tracking.records import TAG_PARENT
from vtrlab.train.bootstrap import hits, mean_difference, mean_interval
from vtrlab.train.query_ranks import QueryRanks, is_recall, load_query_ranks, parse_recall


@dataclass(frozen=True)
class QueryScores:
    """Per-query hits of a metric, averaged over runs (seeds) of the same queries."""

    scores: Tensor
    ranks: QueryRanks  # the first run's (for the split the queries come from)


def query_scores(tracker: Tracker, run_ids: list[str], metric: str) -> QueryScores | None:
    """The hits of `metric` per query averaged over `run_ids`, or None when the metric is not a recall, a run
    has no ranks, or the runs did not rank the same queries."""
    if not is_recall(metric) or not run_ids:
        return None
    ranks = [load_query_ranks(tracker, run_id) for run_id in run_ids]
    if any(r is None for r in ranks):
        return None
    first = ranks[0]
    if not all(first.paired_with(r) for r in ranks):
        return None
    direction, k = parse_recall(metric)
    return QueryScores(torch.stack([hits(r.of(direction), k) for r in ranks]).mean(dim=0), first)


def baseline_runs(tracker: Tracker, baseline: Baseline, entry: str) -> list[str]:
    """The runs whose ranks stand for `baseline`: the champion's training run, or the previous regression's
    runs of `entry` (its seeds, or its champion evaluation)."""
    if baseline.run_id is None:
        return []
    if baseline.kind == "champion":
        return [baseline.run_id]
    parent = tracker.run(baseline.run_id)
    children = tracker.search_runs([parent.experiment_id], tag_filter({TAG_PARENT: baseline.run_id, "entry": entry}))
    return [run.run_id for run in children]


def attach_paired_tests(tracker: Tracker, result: EntryResult, metric: str) -> None:
    """Set the entry's interval over queries and, per comparable baseline with ranks of the same queries, the
    paired bootstrap difference (entry minus baseline) that `judge` reads."""
    mine = query_scores(tracker, [r for r in result.run_ids if r], metric) if not result.failed else None
    if mine is None:
        return
    result.interval = mean_interval(mine.scores).to_dict()
    for baseline in (result.champion, result.previous):
        if baseline is None or not baseline.comparable:
            continue
        theirs = query_scores(tracker, baseline_runs(tracker, baseline, result.key), metric)
        if theirs is not None and mine.ranks.paired_with(theirs.ranks):
            baseline.test = mean_difference(mine.scores, theirs.scores).to_dict()
