"""The comparison table: per (benchmark, method) the best measured trial, with its recalls' 95% bootstrap
intervals over queries, the number of queries and its paired difference from zero-shot, and the papers'
reported numbers as reference rows; rendered for the terminal (rich), Markdown and HTML."""

from __future__ import annotations

import html
from dataclasses import asdict, dataclass, field
from typing import Any

from rich.table import Table

from vtrlab.report.collect import TrialRecord
from vtrlab.report.references import ReferenceRow

MEASURED, REPORTED = "measured", "reported"
DIRECTIONS = ("t2v", "v2t")
RECALLS = ("R1", "R5", "R10")
RANKS = ("MdR", "MnR")


@dataclass
class ComparisonRow:
    """One line of the table: a measured best trial, or a paper's reported result."""

    benchmark: str
    method: str
    source: str  # "measured", or the paper for reported rows
    kind: str  # MEASURED | REPORTED
    backbone: str
    metrics: dict[str, float]
    trainable_params: float | None = None
    trainable_pct: float | None = None
    gpu_hours: float | None = None  # every trial of the method on the benchmark, not just the best
    wall_hours: float | None = None
    trials: int | None = None
    run_id: str | None = None
    sweeps: list[str] = field(default_factory=list)
    intervals: dict[str, dict[str, float]] = field(default_factory=dict)  # "t2v_R1" -> Interval.to_dict()
    queries: dict[str, int] = field(default_factory=dict)  # "t2v"/"v2t" -> number of queries
    versus_baseline: dict[str, Any] | None = None  # T2V R@1 minus zero-shot's, paired (Contrast.to_dict())

    def to_dict(self) -> dict:
        return asdict(self)


def best_rows(trials: list[TrialRecord], objective: str = "t2v_R1", mode: str = "max") -> list[ComparisonRow]:
    """The best trial per (benchmark, method) by `objective`, with the method's summed cost on it."""
    groups: dict[tuple[str, str], list[TrialRecord]] = {}
    for trial in trials:
        groups.setdefault((trial.benchmark, trial.method), []).append(trial)
    sign = 1.0 if mode == "max" else -1.0
    rows = []
    for (benchmark, method), members in sorted(groups.items()):
        scored = [t for t in members if objective in t.metrics] or members
        best = max(scored, key=lambda t: sign * t.metrics.get(objective, float("-inf")))
        rows.append(
            ComparisonRow(
                benchmark=benchmark,
                method=method,
                source=MEASURED,
                kind=MEASURED,
                backbone=best.backbone,
                metrics={k: v for k, v in best.metrics.items() if k.startswith(("t2v_", "v2t_")) or k == "rsum"},
                trainable_params=best.metrics.get("trainable_params"),
                trainable_pct=best.metrics.get("trainable_pct"),
                gpu_hours=sum(t.gpu_hours for t in members),
                wall_hours=sum(t.hours for t in members),
                trials=len(members),
                run_id=best.run_id,
                sweeps=sorted({t.sweep for t in members if t.sweep}),
            )
        )
    return rows


def reference_rows(references: list[ReferenceRow]) -> list[ComparisonRow]:
    return [
        ComparisonRow(
            benchmark=ref.benchmark,
            method=ref.method,
            source=ref.source,
            kind=REPORTED,
            backbone=ref.backbone,
            metrics=ref.metrics(),
            trainable_params=ref.trainable_params,
            trainable_pct=ref.trainable_pct,
        )
        for ref in references
    ]


def _recall(row: ComparisonRow, metric: str) -> str:
    value, interval = row.metrics.get(metric), row.intervals.get(metric)
    if value is None:
        return "–"
    return f"{value:.1f}" if interval is None else f"{value:.1f} [{interval['low']:.1f}, {interval['high']:.1f}]"


def _queries(row: ComparisonRow) -> str:
    return "/".join(str(row.queries[d]) for d in DIRECTIONS) if row.queries else "–"


def _versus(row: ComparisonRow) -> str:
    test = row.versus_baseline
    if test is None:
        return "–"
    verdict = "significant" if test["significant"] else "n.s."
    return f"{test['difference']:+.1f} [{test['low']:+.1f}, {test['high']:+.1f}] {verdict}"


def _ranks(row: ComparisonRow, direction: str) -> str:
    median, mean = (row.metrics.get(f"{direction}_{name}") for name in RANKS)
    return f"{'–' if median is None else f'{median:g}'}/{'–' if mean is None else f'{mean:.1f}'}"


def _params(row: ComparisonRow) -> str:
    return "–" if row.trainable_params is None else f"{int(row.trainable_params):,}"


def _pct(row: ComparisonRow) -> str:
    return "–" if row.trainable_pct is None else f"{row.trainable_pct:.2f}%"


def _hours(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def _source(row: ComparisonRow) -> str:
    if row.kind == MEASURED:
        return f"measured ({row.trials} trial{'s' if row.trials != 1 else ''})"
    return f"reported: {row.source}, {row.backbone}"


HEADERS = (
    "benchmark",
    "method",
    "source",
    "queries T2V/V2T",
    *(f"{d.upper()} R@{k}" for d in DIRECTIONS for k in (1, 5, 10)),
    "T2V MdR/MnR",
    "V2T MdR/MnR",
    "T2V R@1 vs zero-shot",
    "trainable",
    "%",
    "GPU-h",
    "wall-h",
)


def cells(row: ComparisonRow) -> list[str]:
    return [
        row.benchmark,
        row.method,
        _source(row),
        _queries(row),
        *(_recall(row, f"{d}_{name}") for d in DIRECTIONS for name in RECALLS),
        _ranks(row, "t2v"),
        _ranks(row, "v2t"),
        _versus(row),
        _params(row),
        _pct(row),
        _hours(row.gpu_hours),
        _hours(row.wall_hours),
    ]


def ordered(rows: list[ComparisonRow]) -> list[ComparisonRow]:
    """Benchmark by benchmark: measured rows best first, then the reported ones."""
    return sorted(rows, key=lambda r: (r.benchmark, r.kind != MEASURED, -r.metrics.get("t2v_R1", -1.0), r.method))


LEFT = ("benchmark", "method", "source")


def rich_table(rows: list[ComparisonRow], title: str) -> Table:
    table = Table(title=title)
    for header in HEADERS:
        table.add_column(header, justify="left" if header in LEFT else "right")
    for row in ordered(rows):
        table.add_row(*cells(row), style="dim italic" if row.kind == REPORTED else None)
    return table


def markdown_table(rows: list[ComparisonRow]) -> str:
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    for row in ordered(rows):
        values = cells(row)
        if row.kind == REPORTED:
            values = [f"*{v}*" if v != "–" else v for v in values]
        lines.append("| " + " | ".join(values) + " |")
    return "\n".join(lines)


def html_table(rows: list[ComparisonRow]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in HEADERS)
    body = []
    for row in ordered(rows):
        css = ' class="reported"' if row.kind == REPORTED else ""
        body.append(f"<tr{css}>" + "".join(f"<td>{html.escape(v)}</td>" for v in cells(row)) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
