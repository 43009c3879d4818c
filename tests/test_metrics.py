"""Retrieval metrics against a brute-force reference, hand-made cases and bad input."""

from __future__ import annotations

import math
import statistics

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vtrlab.errors import InputError
from vtrlab.train.metrics import METRIC_KEYS, ranks_t2v, ranks_v2t, retrieval_metrics

# --------------------------------------------------------------------------- brute-force reference


def _reference_ranks(sim: list[list[float]], t2v: list[int]) -> tuple[list[int], list[int]]:
    """Literal loops over the definitions: pessimistic ties; V2T ranks caption groups (one per video) by
    their best caption, as CLIP4Clip's ``tensor_video_to_text_sim`` (max over a group, then ranks)."""
    num_texts, num_videos = len(sim), len(sim[0])
    t2v_ranks = []
    for i in range(num_texts):
        gt = sim[i][t2v[i]]
        t2v_ranks.append(1 + sum(1 for j in range(num_videos) if j != t2v[i] and sim[i][j] >= gt))
    v2t_ranks = []
    for v in range(num_videos):
        group_best = [max(sim[i][v] for i in range(num_texts) if t2v[i] == u) for u in range(num_videos)]
        v2t_ranks.append(1 + sum(1 for u in range(num_videos) if u != v and group_best[u] >= group_best[v]))
    return t2v_ranks, v2t_ranks


def _reference_metrics(sim: list[list[float]], t2v: list[int]) -> dict[str, float]:
    out: dict[str, float] = {}
    for prefix, ranks in zip(("t2v", "v2t"), _reference_ranks(sim, t2v), strict=True):
        for k in (1, 5, 10):
            out[f"{prefix}_R{k}"] = 100.0 * sum(r <= k for r in ranks) / len(ranks)
        out[f"{prefix}_MdR"] = float(statistics.median(ranks))
        out[f"{prefix}_MnR"] = sum(ranks) / len(ranks)
        out[f"{prefix}_rsum"] = out[f"{prefix}_R1"] + out[f"{prefix}_R5"] + out[f"{prefix}_R10"]
    out["rsum"] = out["t2v_rsum"]
    return out


@st.composite
def retrieval_problems(draw: st.DrawFn, multi_caption: bool) -> tuple[list[list[float]], list[int]]:
    """A similarity matrix (often with many ties) and a caption-to-video map covering every video."""
    num_videos = draw(st.integers(1, 14))
    if multi_caption:
        extra = draw(st.lists(st.integers(0, num_videos - 1), max_size=20))
        t2v = draw(st.permutations(list(range(num_videos)) + extra))
    else:
        t2v = draw(st.permutations(list(range(num_videos))))
    if draw(st.booleans()):
        scores = st.integers(0, draw(st.integers(0, 3))).map(float)  # small integers: many ties
    else:
        scores = st.floats(-5.0, 5.0, allow_nan=False, width=32)
    sim = [draw(st.lists(scores, min_size=num_videos, max_size=num_videos)) for _ in t2v]
    return sim, t2v


def _check_against_reference(problem: tuple[list[list[float]], list[int]], chunk_size: int | None) -> None:
    sim_list, t2v_list = problem
    sim, t2v = torch.tensor(sim_list, dtype=torch.float32), torch.tensor(t2v_list)
    ref_t2v, ref_v2t = _reference_ranks(sim_list, t2v_list)
    assert ranks_t2v(sim, t2v, chunk_size=chunk_size).tolist() == ref_t2v
    assert ranks_v2t(sim, t2v, chunk_size=chunk_size).tolist() == ref_v2t
    got = retrieval_metrics(sim, t2v, chunk_size=chunk_size)
    expected = _reference_metrics(sim_list, t2v_list)
    assert tuple(got) == METRIC_KEYS
    for key in METRIC_KEYS:
        assert got[key] == pytest.approx(expected[key], abs=1e-9), key


@settings(max_examples=150, deadline=None)
@given(problem=retrieval_problems(multi_caption=False), chunk_size=st.none() | st.integers(1, 5))
def test_single_caption_matches_reference(problem, chunk_size) -> None:
    _check_against_reference(problem, chunk_size)


@settings(max_examples=150, deadline=None)
@given(problem=retrieval_problems(multi_caption=True), chunk_size=st.none() | st.integers(1, 5))
def test_multi_caption_matches_reference(problem, chunk_size) -> None:
    _check_against_reference(problem, chunk_size)


def test_larger_random_matrix_matches_reference_and_chunking() -> None:
    gen = torch.Generator().manual_seed(0)
    num_videos = 60
    t2v = torch.cat([torch.arange(num_videos), torch.randint(0, num_videos, (140,), generator=gen)])
    t2v = t2v[torch.randperm(t2v.numel(), generator=gen)]
    sim = torch.randint(0, 20, (t2v.numel(), num_videos), generator=gen).float()
    expected = _reference_metrics(sim.tolist(), t2v.tolist())
    for chunk_size in (None, 1, 7, 1000):
        got = retrieval_metrics(sim, t2v, chunk_size=chunk_size)
        assert got == pytest.approx(expected, abs=1e-9)


# --------------------------------------------------------------------------- hand-made cases


def test_metric_keys_are_exactly_the_documented_ones() -> None:
    assert METRIC_KEYS == (
        "t2v_R1", "t2v_R5", "t2v_R10", "t2v_MdR", "t2v_MnR",
        "v2t_R1", "v2t_R5", "v2t_R10", "v2t_MdR", "v2t_MnR",
        "t2v_rsum", "v2t_rsum", "rsum",
    )  # fmt: skip


def test_identity_is_perfect() -> None:
    n = 12
    got = retrieval_metrics(torch.eye(n), torch.arange(n))
    for prefix in ("t2v", "v2t"):
        assert got[f"{prefix}_R1"] == got[f"{prefix}_R5"] == got[f"{prefix}_R10"] == 100.0
        assert got[f"{prefix}_MdR"] == got[f"{prefix}_MnR"] == 1.0
        assert got[f"{prefix}_rsum"] == 300.0
    assert got["rsum"] == 300.0


def test_reversed_ground_truth_scores_lowest_gives_worst_rank() -> None:
    n = 20
    got = retrieval_metrics(-torch.eye(n), torch.arange(n))
    for prefix in ("t2v", "v2t"):
        assert (got[f"{prefix}_R1"], got[f"{prefix}_R5"], got[f"{prefix}_R10"]) == (0.0, 0.0, 0.0)
        assert got[f"{prefix}_MdR"] == got[f"{prefix}_MnR"] == float(n)


def test_ordered_preference_gives_known_ranks_and_half_median() -> None:
    # Every text prefers higher video indices: text i ranks its video i at n - i.
    n = 20
    sim = torch.arange(n, dtype=torch.float32).expand(n, n).contiguous()
    assert ranks_t2v(sim, torch.arange(n)).tolist() == [n - i for i in range(n)]
    got = retrieval_metrics(sim, torch.arange(n))
    assert got["t2v_R1"] == 5.0 and got["t2v_R5"] == 25.0 and got["t2v_R10"] == 50.0
    assert got["t2v_MdR"] == 10.5 and got["t2v_MnR"] == 10.5
    assert got["rsum"] == got["t2v_rsum"] == 80.0
    # Each column is constant: every caption ties with the ground truth -> worst V2T rank.
    assert ranks_v2t(sim, torch.arange(n)).tolist() == [n] * n


def test_all_equal_matrix_gets_worst_ranks_not_free_r1() -> None:
    t2v = torch.tensor([0, 0, 0, 1, 2, 2])  # 3 videos, 6 captions
    sim = torch.full((6, 3), 0.25)
    assert ranks_t2v(sim, t2v).tolist() == [3] * 6
    # V2T: every caption group ties with the video's own: rank 3 (all 3 groups) for every video.
    assert ranks_v2t(sim, t2v).tolist() == [3, 3, 3]
    got = retrieval_metrics(sim, t2v)
    assert got["t2v_R1"] == 0.0 and got["v2t_R1"] == 0.0 and got["t2v_MdR"] == 3.0


def test_multi_caption_v2t_uses_best_own_caption() -> None:
    t2v = torch.tensor([0, 0, 1, 1])
    sim = torch.tensor(
        [
            [0.1, 0.5],  # caption 0 of video 0: weak for video 0
            [0.9, 0.0],  # caption 1 of video 0: strong for video 0 -> video 0 best = 0.9
            [0.8, 0.2],  # caption 0 of video 1
            [0.3, 0.4],  # caption 1 of video 1 -> video 1 best = 0.4
        ]
    )
    # Video 0: other videos' captions score 0.8, 0.3 < 0.9 -> rank 1 (its weak caption is ignored).
    # Video 1: caption 0 of video 0 scores 0.5 >= 0.4 -> rank 2.
    assert ranks_v2t(sim, t2v).tolist() == [1, 2]
    assert ranks_t2v(sim, t2v).tolist() == [2, 1, 2, 1]
    got = retrieval_metrics(sim, t2v)
    assert got["v2t_R1"] == 50.0 and got["v2t_MdR"] == 1.5 and got["v2t_MnR"] == 1.5
    assert got["t2v_R1"] == 50.0 and got["t2v_R5"] == 100.0


def test_multi_caption_v2t_ranks_caption_groups_not_captions() -> None:
    """Several captions of ONE other video beating the own best caption cost one rank, not one each
    (CLIP4Clip: max over each video's captions, then ranks over the videos' groups)."""
    t2v = torch.tensor([0, 0, 0, 1, 1])
    sim = torch.tensor([[0.7, 0.0], [0.8, 0.0], [0.9, 0.0], [0.1, 0.5], [0.2, 0.4]])
    # Video 1 (column 1): its best own caption 0.5; video 0's three captions all score 0.0 -> rank 1.
    # Video 0 (column 0): own best 0.9; video 1's group best 0.2 -> rank 1.
    assert ranks_v2t(sim, t2v).tolist() == [1, 1]
    sim[:3, 1] = torch.tensor([0.6, 0.7, 0.8])  # all three captions of video 0 now beat video 1's 0.5
    assert ranks_v2t(sim, t2v).tolist() == [1, 2]  # one group ahead, not three captions


def test_ties_are_pessimistic() -> None:
    sim = torch.tensor([[1.0, 1.0], [0.0, 1.0]])
    # Text 0 ties its ground truth (video 0) with video 1: rank 2, not 1.
    assert ranks_t2v(sim, torch.arange(2)).tolist() == [2, 1]
    # Video 1 (column 1): its caption scores 1.0, text 0 (of video 0) also 1.0 -> rank 2.
    assert ranks_v2t(sim, torch.arange(2)).tolist() == [1, 2]


def test_works_for_float64_bfloat16_and_int32_indices() -> None:
    gen = torch.Generator().manual_seed(1)
    sim = torch.randn(30, 10, generator=gen, dtype=torch.float64)
    t2v = torch.arange(30, dtype=torch.int32) % 10
    expected = _reference_metrics(sim.tolist(), t2v.tolist())
    assert retrieval_metrics(sim, t2v) == pytest.approx(expected, abs=1e-9)
    sim_bf16 = sim.bfloat16()
    expected_bf16 = _reference_metrics(sim_bf16.float().tolist(), t2v.tolist())
    assert retrieval_metrics(sim_bf16, t2v) == pytest.approx(expected_bf16, abs=1e-9)


def test_infinite_scores_are_ranked() -> None:
    inf = float("inf")
    sim = torch.tensor([[inf, 0.0], [-inf, -inf]])
    assert ranks_t2v(sim, torch.arange(2)).tolist() == [1, 2]
    assert ranks_v2t(sim, torch.arange(2)).tolist() == [1, 2]  # 0.0 >= -inf


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("sim", "t2v", "match"),
    [
        (torch.zeros(4), torch.arange(4), "2-D"),
        (torch.zeros(2, 2, 2), torch.arange(2), "2-D"),
        (torch.zeros(3, 3, dtype=torch.long), torch.arange(3), "floating-point"),
        (torch.zeros(0, 3), torch.zeros(0, dtype=torch.long), "empty"),
        (torch.zeros(3, 3), torch.arange(2), "3 rows"),
        (torch.zeros(3, 3), torch.arange(3).float(), "integer"),
        (torch.zeros(3, 3), torch.ones(3, dtype=torch.bool), "integer"),
        (torch.zeros(3, 3), torch.arange(3)[None], "1-D"),
        (torch.zeros(3, 3), torch.tensor([0, 1, 3]), r"text_to_video\[2\] = 3 is out of range"),
        (torch.zeros(3, 3), torch.tensor([0, -1, 2]), r"text_to_video\[1\] = -1 is out of range"),
        (torch.tensor([[0.0, math.nan], [1.0, 0.0]]), torch.arange(2), "NaN.*row 0"),
        (torch.zeros(3, 4), torch.tensor([0, 0, 2]), "video.*have none.*1, 3"),
        ([[1.0]], torch.arange(1), "torch.Tensor"),
        (torch.zeros(1, 1), [0], "torch.Tensor"),
    ],
)
def test_bad_input_raises_input_error(sim, t2v, match) -> None:
    for fn in (retrieval_metrics, ranks_t2v, ranks_v2t):
        with pytest.raises(InputError, match=match):
            fn(sim, t2v)


def test_bad_chunk_size_raises_input_error() -> None:
    with pytest.raises(InputError, match="chunk_size"):
        retrieval_metrics(torch.eye(3), torch.arange(3), chunk_size=0)
