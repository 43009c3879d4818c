"""The papers' reported numbers (package data `vtrlab/references/*.yaml`), shown as reference rows."""

from __future__ import annotations

from functools import cache
from importlib import resources

from pydantic import BaseModel, ConfigDict, Field

from vtrlab.config import parse_yaml, validate_model

METRIC_NAMES = ("R1", "R5", "R10", "MdR", "MnR")


class Direction(BaseModel):
    """One retrieval direction's reported metrics; any may be missing (papers report subsets)."""

    model_config = ConfigDict(extra="forbid")
    R1: float | None = None
    R5: float | None = None
    R10: float | None = None
    MdR: float | None = None
    MnR: float | None = None


class ReferenceRow(BaseModel):
    """A result a paper reports: never measured by vtrlab."""

    model_config = ConfigDict(extra="forbid")
    source: str
    method: str
    benchmark: str
    backbone: str
    t2v: Direction = Direction()
    v2t: Direction = Direction()
    trainable_pct: float | None = None
    trainable_params: int | None = None
    note: str = ""

    def metrics(self) -> dict[str, float]:
        """Flat `t2v_R1`-style keys, as measured runs log them."""
        flat = {}
        for direction in ("t2v", "v2t"):
            for name, value in getattr(self, direction).model_dump().items():
                if value is not None:
                    flat[f"{direction}_{name}"] = value
        return flat


class ReferenceTable(BaseModel):
    """One file of reference rows (`vtrlab/references/<paper>.yaml`)."""

    model_config = ConfigDict(extra="forbid")
    rows: list[ReferenceRow] = Field(default_factory=list)


@cache
def load_references() -> tuple[ReferenceRow, ...]:
    """Every reference row shipped with vtrlab (read with the one YAML loader, errors naming file and key)."""
    rows: list[ReferenceRow] = []
    for entry in sorted(resources.files("vtrlab.references").iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".yaml"):
            continue
        source = f"vtrlab/references/{entry.name}"
        rows.extend(validate_model(ReferenceTable, parse_yaml(entry.read_text(), source) or {}, source).rows)
    return tuple(rows)


def references_for(benchmarks: set[str] | None = None) -> list[ReferenceRow]:
    """Reference rows of `benchmarks` (all when None)."""
    return [row for row in load_references() if benchmarks is None or row.benchmark in benchmarks]
