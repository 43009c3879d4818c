"""How far measured scores can be trusted: every compared run's 95% bootstrap intervals over its queries and
the paired bootstrap differences between methods on the same benchmark's queries, from the runs' per-query
ranks (`eval/ranks.json`, `vtrlab.train.query_ranks`). Deterministic: the resampling seed is fixed (0).

Runs logged before vtrlab kept ranks have none: their scores are shown without an interval, and no
difference involving them is called significant or not.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from typing import Any

from vtrlab.tracking.client import Tracker
from vtrlab.train.bootstrap import PairedDifference
from vtrlab.train.query_ranks import QueryRanks, load_query_ranks

CONTRAST_METRIC = "t2v_R1"
BASELINE_METHOD = "zero-shot"  # the frozen backbone every adapter is held against


@dataclass(frozen=True)
class Contrast:
    """Method `a` minus method `b` on `metric` over the same queries of `benchmark` (paired bootstrap)."""

    benchmark: str
    a: str
    b: str
    metric: str
    test: PairedDifference

    @property
    def significant(self) -> bool:
        return self.test.significant

    def to_dict(self) -> dict[str, Any]:
        return {"benchmark": self.benchmark, "a": self.a, "b": self.b, "metric": self.metric, **self.test.to_dict()}

    def reversed(self) -> Contrast:
        """`b` minus `a`: the same resamples, the interval mirrored."""
        t = self.test
        test = PairedDifference(-t.difference, -t.high, -t.low, t.p_value, t.queries, t.level)
        return Contrast(self.benchmark, self.b, self.a, self.metric, test)

    def verdict(self) -> str:
        return "significant" if self.significant else "not significant"

    def __str__(self) -> str:
        t = self.test
        return (
            f"{self.a} - {self.b}: {t.difference:+.1f} [{t.low:+.1f}, {t.high:+.1f}] "
            f"(p={t.p_value:.3f}, {self.verdict()})"
        )


@dataclass(frozen=True)
class MethodsCompared:
    """One benchmark's best run per method, compared: each method's per-query ranks (those that kept them),
    every pair's paired contrast, and each method's contrast with zero-shot (method minus zero-shot)."""

    ranks: dict[str, QueryRanks]
    contrasts: list[Contrast]
    versus_baseline: dict[str, Contrast]


def compare_methods(tracker: Tracker, benchmark: str, best_runs: dict[str, str]) -> MethodsCompared:
    """Compare the methods of `best_runs` ({method: its best run id on `benchmark`}) from the runs' own ranks."""
    ranks = {}
    for method, run_id in best_runs.items():
        found = load_query_ranks(tracker, run_id)
        if found is not None:
            ranks[method] = found
    pairs = []
    for (method_a, a), (method_b, b) in combinations(ranks.items(), 2):
        if a.paired_with(b):
            contrast = Contrast(benchmark, method_a, method_b, CONTRAST_METRIC, a.difference(b, CONTRAST_METRIC))
            pairs.append(contrast.reversed() if contrast.test.difference < 0 else contrast)
    pairs.sort(key=lambda c: (-c.test.difference, c.a, c.b))
    versus = {}
    for contrast in pairs:
        if BASELINE_METHOD in (contrast.a, contrast.b):
            mine = contrast if contrast.b == BASELINE_METHOD else contrast.reversed()
            versus[mine.a] = mine
    return MethodsCompared(ranks, pairs, versus)
