"""The one list of retrieval metric names (what evaluation returns, MLflow logs, sweeps optimise and
regressions compare), and which way each is better."""

from __future__ import annotations

from typing import Literal

RECALL_AT = (1, 5, 10)
PER_DIRECTION = ("R1", "R5", "R10", "MdR", "MnR")

METRIC_KEYS: tuple[str, ...] = (
    *(f"t2v_{k}" for k in PER_DIRECTION),
    *(f"v2t_{k}" for k in PER_DIRECTION),
    "t2v_rsum",
    "v2t_rsum",
    "rsum",
)
"""Exactly the keys `vtrlab.train.metrics.retrieval_metrics` returns, in that order."""


def direction(metric: str) -> Literal["max", "min"]:
    """ "min" for ranks (MdR, MnR: lower is better), "max" for recalls and sums."""
    return "min" if metric.endswith(("MdR", "MnR")) else "max"
