"""Per-query ranks of an evaluation, kept with its run as `eval/ranks.json`, so that any later comparison can
put a bootstrap interval on a recall and test two runs' difference on the same queries
(`vtrlab.train.bootstrap`).

The file is plain JSON (never pickle): `{"format": 1, "benchmark", "split", "epoch", "t2v": [...], "v2t": [...]}`
with 1-based ranks, T2V one per caption query and V2T one per video query, in the eval split's manifest order
(the order every run of the same split shares, which is what makes two runs' ranks paired).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from vtrlab.errors import ArtifactError
from vtrlab.train.bootstrap import Interval, PairedDifference, paired_difference, recall_interval
from vtrlab.train.metric_names import RECALL_AT

if TYPE_CHECKING:
    from vtrlab.tracking.client import Tracker

RANKS_ARTIFACT = "eval/ranks.json"
FORMAT = 1
DIRECTIONS = ("t2v", "v2t")


@dataclass(frozen=True)
class QueryRanks:
    """The 1-based rank of every query of one evaluation, in both directions."""

    t2v: Tensor  # [captions]
    v2t: Tensor  # [videos]
    benchmark: str = ""
    split: str = ""
    epoch: int | None = None

    def of(self, direction: str) -> Tensor:
        if direction not in DIRECTIONS:
            raise ValueError(f"direction {direction!r}: expected one of {DIRECTIONS}")
        return self.t2v if direction == "t2v" else self.v2t

    def interval(self, metric: str, seed: int = 0) -> Interval:
        """The bootstrap interval of a recall metric such as `t2v_R1`."""
        direction, k = parse_recall(metric)
        return recall_interval(self.of(direction), k, seed=seed)

    def intervals(self, seed: int = 0) -> dict[str, Interval]:
        """`{t2v,v2t}_R{1,5,10}` -> interval."""
        return {f"{d}_R{k}": self.interval(f"{d}_R{k}", seed) for d in DIRECTIONS for k in RECALL_AT}

    def interval_metrics(self, seed: int = 0) -> dict[str, float]:
        """The flat keys MLflow logs beside the recalls: `{metric}_low`, `{metric}_high`, `{t2v,v2t}_queries`."""
        out = {f"{d}_queries": float(self.of(d).numel()) for d in DIRECTIONS}
        for metric, interval in self.intervals(seed).items():
            out[f"{metric}_low"], out[f"{metric}_high"] = interval.low, interval.high
        return out

    def paired_with(self, other: QueryRanks) -> bool:
        """Whether `other` ranked the same queries (same split and query counts), so a paired test applies."""
        return (
            (self.benchmark, self.split) == (other.benchmark, other.split)
            and self.t2v.numel() == other.t2v.numel()
            and self.v2t.numel() == other.v2t.numel()
        )

    def difference(self, other: QueryRanks, metric: str, seed: int = 0) -> PairedDifference:
        """This evaluation's `metric` minus `other`'s on the same queries (paired bootstrap)."""
        direction, k = parse_recall(metric)
        return paired_difference(self.of(direction), other.of(direction), k, seed=seed)

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": FORMAT,
                "benchmark": self.benchmark,
                "split": self.split,
                "epoch": self.epoch,
                "t2v": self.t2v.tolist(),
                "v2t": self.v2t.tolist(),
            }
        )

    @classmethod
    def from_json(cls, text: str | bytes, source: str) -> QueryRanks:
        """Parse and check a ranks file; ArtifactError naming `source` and the key when it is not one."""
        try:
            document = json.loads(text)
        except (ValueError, UnicodeDecodeError) as err:
            raise ArtifactError(f"{source}: not JSON ({err})") from err
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise ArtifactError(f"{source}: expected a JSON object with format {FORMAT}")
        ranks = {}
        for direction in DIRECTIONS:
            values = document.get(direction)
            if (
                not isinstance(values, list)
                or not values
                or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in values)
            ):
                raise ArtifactError(f"{source}: key {direction!r} must be a non-empty list of integer ranks >= 1")
            ranks[direction] = torch.tensor(values, dtype=torch.long)
        epoch = document.get("epoch")
        if epoch is not None and (not isinstance(epoch, int) or isinstance(epoch, bool)):
            raise ArtifactError(f"{source}: key 'epoch' must be an integer or null")
        names = {key: document.get(key, "") for key in ("benchmark", "split")}
        if not all(isinstance(v, str) for v in names.values()):
            raise ArtifactError(f"{source}: keys 'benchmark' and 'split' must be strings")
        return cls(ranks["t2v"], ranks["v2t"], names["benchmark"], names["split"], epoch)


def parse_recall(metric: str) -> tuple[str, int]:
    """`t2v_R1` -> ("t2v", 1); ValueError for metrics that are not a recall (MdR, MnR, sums)."""
    direction, _, name = metric.partition("_")
    if direction in DIRECTIONS and name.startswith("R") and name[1:].isdigit():
        return direction, int(name[1:])
    raise ValueError(f"{metric!r} is not a recall metric ({{t2v,v2t}}_R<k>)")


def is_recall(metric: str) -> bool:
    try:
        parse_recall(metric)
    except ValueError:
        return False
    return True


def load_query_ranks(tracker: Tracker, run_id: str) -> QueryRanks | None:
    """The `eval/ranks.json` of a run, or None when it has none (a run logged before vtrlab kept ranks, or one
    that never evaluated); ArtifactError when the file is there but is not a ranks file."""
    import tempfile

    if not any(f.path == RANKS_ARTIFACT for f in tracker.list_artifacts(run_id, RANKS_ARTIFACT.split("/")[0])):
        return None
    with tempfile.TemporaryDirectory() as directory:
        local = tracker.download(run_id, RANKS_ARTIFACT, directory)
        return QueryRanks.from_json(local.read_bytes(), f"run {run_id}: {RANKS_ARTIFACT}")
