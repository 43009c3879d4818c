"""The synthetic temporal benchmark: written by ``vtrlab data synth`` (:mod:`vtrlab.data.synth`), not
parsed from annotation files; registered for its card."""

from __future__ import annotations

from pathlib import Path

from vtrlab.data.benchmarks.common import Parsed
from vtrlab.data.benchmarks.registry import register_benchmark
from vtrlab.data.card import DatasetCard
from vtrlab.errors import ConfigError


@register_benchmark("synthetic", "moving coloured shapes with ordered-event captions (vtrlab data synth)")
def parse_synthetic(card: DatasetCard, ann_dir: Path, splits: list[str], strict_ids: bool = False) -> Parsed:
    raise ConfigError(
        f"card {card.name!r}: the synthetic benchmark has no annotation files to parse; "
        "write it with `vtrlab data synth --out URL`"
    )
