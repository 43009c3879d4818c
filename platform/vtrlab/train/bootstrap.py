"""How uncertain a retrieval score is: bootstrap confidence intervals over queries, and the paired bootstrap
test of whether two methods' difference on the same queries is real.

Both resample the queries (with replacement) `resamples` times with a generator seeded by `seed`, so the
same ranks and seed always give the same interval. Recall@k of a resample is the share of its queries whose
rank is at most k. The interval is the percentile interval of the resampled recalls; the paired test
resamples the *same* query indices for both methods and reads the interval of the differences (the
difference is significant when that interval excludes zero). Resamples are drawn in blocks, so memory stays
about `block x queries` indices whatever the number of resamples.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from vtrlab.errors import InputError

RESAMPLES = 1000
LEVEL = 0.95
BLOCK_ELEMENTS = 1 << 22


@dataclass(frozen=True)
class Interval:
    """A recall in percent with its bootstrap interval and the number of queries it stands on."""

    value: float
    low: float
    high: float
    queries: int
    level: float = LEVEL

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.value:.1f} [{self.low:.1f}, {self.high:.1f}]"


@dataclass(frozen=True)
class PairedDifference:
    """A's recall minus B's on the same queries, its bootstrap interval, and a two-sided p-value."""

    difference: float
    low: float
    high: float
    p_value: float
    queries: int
    level: float = LEVEL

    @property
    def significant(self) -> bool:
        return self.low > 0 or self.high < 0

    def to_dict(self) -> dict[str, float | bool]:
        return {**asdict(self), "significant": self.significant}


def hits(ranks: Tensor, k: int) -> Tensor:
    """1.0 where a query's rank is at most `k`, else 0.0 (float64, one per query)."""
    if not isinstance(ranks, Tensor) or ranks.dim() != 1 or ranks.numel() == 0:
        raise InputError("ranks must be a non-empty 1-D tensor of 1-based ranks (one per query)")
    return (ranks <= k).double()


def _resampled_means(scores: list[Tensor], resamples: int, seed: int) -> list[Tensor]:
    """Per tensor in `scores` (all over the same queries), the means of `resamples` resamples of the queries,
    drawn with the same indices for every tensor."""
    n = scores[0].numel()
    generator = torch.Generator().manual_seed(seed)
    block = max(1, BLOCK_ELEMENTS // n)
    means: list[list[Tensor]] = [[] for _ in scores]
    for start in range(0, resamples, block):
        count = min(block, resamples - start)
        index = torch.randint(0, n, (count, n), generator=generator)
        for i, h in enumerate(scores):
            means[i].append(h[index].mean(dim=1))
    return [torch.cat(m) for m in means]


def _percentiles(values: Tensor, level: float) -> tuple[float, float]:
    tail = (1.0 - level) / 2.0
    low, high = torch.quantile(values, torch.tensor([tail, 1.0 - tail], dtype=values.dtype))
    return float(low), float(high)


def _per_query(scores: Tensor) -> Tensor:
    if not isinstance(scores, Tensor) or scores.dim() != 1 or scores.numel() == 0:
        raise InputError("per-query scores must be a non-empty 1-D tensor (one per query)")
    return scores.double()


def mean_interval(scores: Tensor, resamples: int = RESAMPLES, seed: int = 0, level: float = LEVEL) -> Interval:
    """The mean of per-query scores in [0, 1] (e.g. hits, or hits averaged over seeds), in percent, with its
    `level` bootstrap interval over queries."""
    scores = _per_query(scores)
    (means,) = _resampled_means([scores], resamples, seed)
    low, high = _percentiles(means * 100.0, level)
    return Interval(float(scores.mean() * 100.0), low, high, scores.numel(), level)


def recall_interval(ranks: Tensor, k: int, resamples: int = RESAMPLES, seed: int = 0, level: float = LEVEL) -> Interval:
    """Recall@k (percent) of `ranks` with its `level` bootstrap interval over queries."""
    return mean_interval(hits(ranks, k), resamples, seed, level)


def mean_difference(
    scores_a: Tensor, scores_b: Tensor, resamples: int = RESAMPLES, seed: int = 0, level: float = LEVEL
) -> PairedDifference:
    """Mean per-query score of A minus B (percent points) on the same queries, with the paired bootstrap
    interval and a two-sided p-value (twice the share of resampled differences on the far side of zero)."""
    a, b = _per_query(scores_a), _per_query(scores_b)
    if a.shape != b.shape:
        raise InputError(f"paired scores must be over the same queries: {a.numel()} vs {b.numel()} queries")
    diff_a, diff_b = _resampled_means([a, b], resamples, seed)
    differences = (diff_a - diff_b) * 100.0
    low, high = _percentiles(differences, level)
    observed = float((a.mean() - b.mean()) * 100.0)
    if observed == 0.0 and bool((differences == 0).all()):
        p_value = 1.0
    else:
        below = float((differences <= 0).double().mean())
        above = float((differences >= 0).double().mean())
        p_value = min(1.0, 2.0 * min(below, above))
    return PairedDifference(observed, low, high, p_value, a.numel(), level)


def paired_difference(
    ranks_a: Tensor, ranks_b: Tensor, k: int, resamples: int = RESAMPLES, seed: int = 0, level: float = LEVEL
) -> PairedDifference:
    """Recall@k of A minus B (percent points) on the same queries (`mean_difference` of their hits)."""
    a, b = hits(ranks_a, k), hits(ranks_b, k)
    if a.shape != b.shape:
        raise InputError(f"paired ranks must be over the same queries: {a.numel()} vs {b.numel()} ranks")
    return mean_difference(a, b, resamples, seed, level)
