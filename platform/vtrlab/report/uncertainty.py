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


def query_ranks_of(tracker: Tracker, run_ids: list[str]) -> dict[str, QueryRanks]:
    """{run id: its per-query ranks} for the runs that kept them."""
    found = {}
    for run_id in dict.fromkeys(run_ids):
        ranks = load_query_ranks(tracker, run_id)
        if ranks is not None:
            found[run_id] = ranks
    return found


def contrasts(benchmark: str, ranked: list[tuple[str, QueryRanks]], metric: str = CONTRAST_METRIC) -> list[Contrast]:
    """Every pair of (method, ranks) on the same queries, the better-scoring method first."""
    found = []
    for (method_a, a), (method_b, b) in combinations(ranked, 2):
        if not a.paired_with(b):
            continue
        contrast = Contrast(benchmark, method_a, method_b, metric, a.difference(b, metric))
        found.append(contrast.reversed() if contrast.test.difference < 0 else contrast)
    return sorted(found, key=lambda c: (c.benchmark, -c.test.difference, c.a, c.b))


def against_baseline(found: list[Contrast], method: str, benchmark: str) -> Contrast | None:
    """The contrast of `method` with the zero-shot baseline on `benchmark`, as method minus baseline."""
    for contrast in found:
        if contrast.benchmark != benchmark or {contrast.a, contrast.b} != {method, BASELINE_METHOD}:
            continue
        return contrast if contrast.a == method else contrast.reversed()
    return None
