"""Bootstrap intervals over queries and the paired bootstrap test, against a brute-force bootstrap and
hand-made cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vtrlab.errors import ArtifactError, InputError
from vtrlab.train.bootstrap import mean_difference, mean_interval, paired_difference, recall_interval
from vtrlab.train.query_ranks import QueryRanks


def brute_force_interval(ranks: np.ndarray, k: int, resamples: int, seed: int, level: float = 0.95):
    """The textbook percentile bootstrap, one resample at a time."""
    rng = np.random.default_rng(seed)
    hits = (ranks <= k).astype(float)
    means = [hits[rng.integers(0, len(hits), len(hits))].mean() * 100 for _ in range(resamples)]
    tail = (1 - level) / 2
    return hits.mean() * 100, np.quantile(means, tail), np.quantile(means, 1 - tail)


@pytest.mark.parametrize(("n", "p", "k"), [(64, 0.2, 1), (500, 0.5, 5), (2000, 0.07, 10)])
def test_interval_matches_a_brute_force_bootstrap(n, p, k):
    rng = np.random.default_rng(n)
    ranks = np.where(rng.random(n) < p, rng.integers(1, k + 1, n), rng.integers(k + 1, 100, n))
    got = recall_interval(torch.from_numpy(ranks), k, resamples=4000, seed=1)
    value, low, high = brute_force_interval(ranks, k, resamples=4000, seed=2)
    assert got.value == pytest.approx(value)
    assert got.queries == n
    half = (high - low) / 2
    assert got.low == pytest.approx(low, abs=0.15 * half + 0.2)
    assert got.high == pytest.approx(high, abs=0.15 * half + 0.2)
    normal = 1.96 * np.sqrt(value / 100 * (1 - value / 100) / n) * 100
    assert (got.high - got.low) / 2 == pytest.approx(normal, rel=0.2)


def test_intervals_are_deterministic_for_a_seed():
    ranks = torch.randint(1, 50, (300,), generator=torch.Generator().manual_seed(0))
    first, again = recall_interval(ranks, 5, seed=7), recall_interval(ranks, 5, seed=7)
    assert first == again
    assert recall_interval(ranks, 5, seed=8) != first
    keys = QueryRanks(ranks, ranks[:40]).interval_metrics()
    sides = {f"{d}_R{k}_{side}" for d in ("t2v", "v2t") for k in (1, 5, 10) for side in ("low", "high")}
    assert set(keys) == {"t2v_queries", "v2t_queries", *sides}
    assert keys["t2v_queries"] == 300 and keys["v2t_queries"] == 40 and keys["t2v_R1_low"] <= keys["t2v_R1_high"]


def test_an_interval_of_a_constant_score_is_a_point():
    interval = recall_interval(torch.ones(50, dtype=torch.long), 1)
    assert (interval.value, interval.low, interval.high) == (100.0, 100.0, 100.0)


def test_paired_identical_ranks_differ_by_nothing():
    ranks = torch.randint(1, 20, (200,), generator=torch.Generator().manual_seed(3))
    result = paired_difference(ranks, ranks.clone(), 1)
    assert result.difference == 0 and result.low == 0 and result.high == 0
    assert result.p_value == 1.0 and not result.significant


def test_paired_one_method_always_right_the_other_never_is_significant():
    result = paired_difference(torch.ones(100, dtype=torch.long), torch.full((100,), 7), 1)
    assert result.difference == 100 and result.significant and result.p_value == 0.0


def test_paired_a_one_query_difference_among_many_is_not_significant():
    a = torch.full((1000,), 3)
    b = a.clone()
    a[0] = 1  # A gets one more query right at rank 1
    result = paired_difference(a, b, 1)
    assert result.difference == pytest.approx(0.1)
    assert not result.significant and result.p_value > 0.05


def test_paired_test_sees_what_unpaired_intervals_miss():
    """Two methods right on mostly the same queries: their separate intervals overlap widely, the paired
    difference (6 points, always in A's favour) is clearly significant."""
    rng = np.random.default_rng(0)
    b_hits = rng.random(400) < 0.4
    a_hits = b_hits.copy()
    a_hits[np.flatnonzero(~b_hits)[:25]] = True
    ranks_a, ranks_b = torch.from_numpy(np.where(a_hits, 1, 9)), torch.from_numpy(np.where(b_hits, 1, 9))
    interval_a, interval_b = recall_interval(ranks_a, 1), recall_interval(ranks_b, 1)
    assert interval_a.low < interval_b.high  # the unpaired intervals overlap
    result = paired_difference(ranks_a, ranks_b, 1)
    assert result.difference == pytest.approx(6.25) and result.significant and result.low > 2


def test_bad_ranks_are_named():
    with pytest.raises(InputError, match="non-empty 1-D"):
        recall_interval(torch.empty(0), 1)
    with pytest.raises(InputError, match="same queries"):
        paired_difference(torch.ones(3, dtype=torch.long), torch.ones(4, dtype=torch.long), 1)


def test_seed_averaged_scores_use_the_same_bootstrap_as_hits():
    """A query's score may be its hit rate over seeds; with one seed it is the recall's own interval."""
    ranks = torch.randint(1, 30, (250,), generator=torch.Generator().manual_seed(5))
    single = mean_interval((ranks <= 5).double(), seed=3)
    assert single == recall_interval(ranks, 5, seed=3)
    two_seeds = torch.stack([(ranks <= 5).double(), (ranks <= 1).double()]).mean(dim=0)
    averaged = mean_interval(two_seeds, seed=3)
    assert averaged.value == pytest.approx(((ranks <= 5).double().mean() + (ranks <= 1).double().mean()) * 50)
    assert mean_difference(two_seeds, two_seeds).p_value == 1.0


def test_query_ranks_round_trip_and_bad_files_are_named():
    ranks = QueryRanks(torch.tensor([1, 3, 2]), torch.tensor([2, 1]), "msvd", "test", 4)
    again = QueryRanks.from_json(ranks.to_json(), "run r/eval/ranks.json")
    assert torch.equal(again.t2v, ranks.t2v) and torch.equal(again.v2t, ranks.v2t)
    assert (again.benchmark, again.split, again.epoch) == ("msvd", "test", 4) and again.paired_with(ranks)
    assert ranks.interval("t2v_R1").queries == 3 and ranks.difference(again, "v2t_R1").difference == 0
    for text, key in [
        ("[1, 2]", "format 1"),
        ('{"format": 1, "t2v": [1, 0], "v2t": [1]}', "'t2v'"),
        ('{"format": 1, "t2v": [1], "v2t": [true]}', "'v2t'"),
        ('{"format": 1, "t2v": [1], "v2t": [1], "epoch": "3"}', "'epoch'"),
        ("not json", "not JSON"),
    ]:
        with pytest.raises(ArtifactError, match=key) as raised:
            QueryRanks.from_json(text, "run r/eval/ranks.json")
        assert "run r/eval/ranks.json" in str(raised.value)
    with pytest.raises(ValueError, match="not a recall"):
        ranks.interval("t2v_MnR")
