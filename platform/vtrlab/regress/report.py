"""The regression report: `report.md`, a self-contained `report.html` (the plot embedded), `report.png` and
`results.json`, each written under a temporary name and renamed."""

from __future__ import annotations

import base64
import html
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vtrlab.atomic import atomic_write, write_text_atomic
from vtrlab.regress.baselines import Baseline, EntryResult
from vtrlab.regress.verdicts import FAILED, NO_BASELINE, NOT_OK, PASS, REGRESSION

COLOURS = {PASS: "#1a7f37", REGRESSION: "#cf222e", NO_BASELINE: "#6e7781", FAILED: "#cf222e"}
MARKDOWN, HTML, PLOT, JSON = "report.md", "report.html", "report.png", "results.json"


@dataclass
class ReportHeader:
    """What the report says about the run as a whole."""

    suite: str
    mode: str
    metric: str
    started: str
    wall_seconds: float
    run_id: str
    experiment: str
    tracking_uri: str
    git_commit: str
    suite_file: str

    @property
    def title(self) -> str:
        return f"Regression suite {self.suite} ({self.mode})"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _baseline_cell(baseline: Baseline | None) -> str:
    if baseline is None:
        return "none"
    text = f"{_num(baseline.value)} ({baseline.short})"
    return text + ("" if baseline.comparable else " reference only")


def _interval_cell(result: EntryResult) -> str:
    interval = result.interval
    if interval is None:
        return "-"
    return f"[{interval['low']:.2f}, {interval['high']:.2f}] ({interval['queries']} queries)"


def _test_cell(baseline: Baseline | None) -> str:
    if baseline is None or baseline.test is None:
        return "-"
    test = baseline.test
    mark = " significant" if test["significant"] else ""
    return f"{test['difference']:+.2f} [{test['low']:+.2f}, {test['high']:+.2f}]{mark}"


RULE = (
    "regression when mean < baseline - allowed drop and, for a recall with per-query ranks on both sides, the "
    "paired bootstrap difference over the same queries is significantly below zero (95%)"
)


def details(result: EntryResult) -> str:
    """The verdict's reason and what each baseline is, in one line."""
    parts = [f"{result.verdict} ({result.reason})"]
    for baseline in (result.champion, result.previous):
        if baseline is not None:
            parts.append(f"{baseline.kind}: {baseline.label}" + (f", {baseline.note}" if baseline.note else ""))
    return "; ".join(parts)


def overall(results: list[EntryResult]) -> str:
    """ "regression" when any entry regressed or failed, else "pass"."""
    return REGRESSION if any(r.verdict in NOT_OK for r in results) else PASS


def table_rows(results: list[EntryResult]) -> list[dict[str, str]]:
    """One row of strings per entry, shared by the Markdown, HTML and terminal tables."""
    rows = []
    for r in results:
        values = ", ".join(
            f"{s}: {_num(v) if v is not None else 'failed'}" for s, v in zip(r.seeds, r.values, strict=True)
        )
        rows.append(
            {
                "entry": r.key,
                "method": r.method,
                "seeds": values,
                "mean ± std": f"{_num(r.mean)} ± {r.std:.2f}",
                "95% interval": _interval_cell(r),
                "champion": _baseline_cell(r.champion),
                "vs champion": _test_cell(r.champion),
                "previous run": _baseline_cell(r.previous),
                "vs previous": _test_cell(r.previous),
                "allowed drop": f"{r.allowed_drop:.2f}",
                "verdict": r.verdict,
            }
        )
    return rows


def markdown(header: ReportHeader, results: list[EntryResult]) -> str:
    rows = table_rows(results)
    columns = list(rows[0]) if rows else []
    lines = [
        f"# {header.title}: {overall(results)}",
        "",
        f"- started {header.started}, {header.wall_seconds:.0f} s; metric `{header.metric}` (last epoch, mean "
        f"over seeds; intervals: bootstrap over queries); {RULE}",
        f"- suite file `{header.suite_file}`, git commit `{header.git_commit}`",
        f"- MLflow: experiment `{header.experiment}`, run `{header.run_id}` at `{header.tracking_uri}`",
        "",
        "| " + " | ".join(columns) + " |",
        "|" + "|".join("---" for _ in columns) + "|",
    ]
    lines += ["| " + " | ".join(row[c].replace("|", "\\|") for c in columns) + " |" for row in rows]
    lines += ["", *[f"- **{r.key}**: {details(r)}" for r in results], "", f"![{header.metric}]({PLOT})", ""]
    return "\n".join(lines)


def html_page(header: ReportHeader, results: list[EntryResult], png: bytes) -> str:
    rows = table_rows(results)
    columns = list(rows[0]) if rows else []
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = ""
    for row in rows:
        cells = "".join(
            f'<td style="color:{COLOURS[row[c]]};font-weight:bold">{html.escape(row[c])}</td>'
            if c == "verdict"
            else f"<td>{html.escape(row[c])}</td>"
            for c in columns
        )
        body += f"<tr>{cells}</tr>\n"
    reasons = "".join(f"<li><b>{html.escape(r.key)}</b>: {html.escape(details(r))}</li>" for r in results)
    verdict = overall(results)
    image = base64.b64encode(png).decode("ascii")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(header.title)}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #d0d7de;padding:4px 8px;text-align:left}}th{{background:#f6f8fa}}</style></head>
<body><h1>{html.escape(header.title)}: <span style="color:{COLOURS[verdict]}">{verdict}</span></h1>
<p>started {html.escape(header.started)}, {header.wall_seconds:.0f} s; metric <code>{html.escape(header.metric)}</code>
(last epoch, mean over seeds; intervals: bootstrap over queries); {html.escape(RULE)}<br>
suite file <code>{html.escape(header.suite_file)}</code>, git commit <code>{html.escape(header.git_commit)}</code><br>
MLflow: experiment <code>{html.escape(header.experiment)}</code>, run <code>{html.escape(header.run_id)}</code>
at <code>{html.escape(header.tracking_uri)}</code></p>
<table><tr>{head}</tr>
{body}</table><ul>{reasons}</ul>
<img alt="{html.escape(header.metric)} per entry" src="data:image/png;base64,{image}">
</body></html>
"""


def plot(results: list[EntryResult], metric: str, path: Path) -> None:
    """Per entry: each seed's value (points), the mean (bar, with its spread over seeds and its 95% interval
    over queries), comparable baselines (lines) with their tolerance bands (shaded), reference-only baselines
    (dotted)."""
    from matplotlib.figure import Figure  # the object API: no pyplot state, no backend switch in the caller

    fig = Figure(figsize=(max(7.0, 1.8 * len(results) + 4), 4.5), dpi=110)
    ax = fig.subplots()
    styles = {"champion": ("#8250df", "-"), "previous": ("#0969da", "--")}
    labelled: set[str] = set()

    def label(name: str) -> str | None:
        if name in labelled:
            return None
        labelled.add(name)
        return name

    for i, r in enumerate(results):
        for baseline in (r.champion, r.previous):
            if baseline is None or baseline.value is None:
                continue
            colour, line = styles[baseline.kind]
            if baseline.comparable:
                low = baseline.value - r.allowed_drop
                band = label(f"{baseline.kind} - allowed drop")
                ax.fill_between([i - 0.4, i + 0.4], low, baseline.value, color=colour, alpha=0.12, lw=0, label=band)
                ax.hlines(baseline.value, i - 0.4, i + 0.4, colors=colour, linestyles=line, label=label(baseline.kind))
            else:
                ax.hlines(
                    baseline.value,
                    i - 0.4,
                    i + 0.4,
                    colors=colour,
                    linestyles=":",
                    label=label(f"{baseline.kind} (reference)"),
                )
        if r.mean is not None:
            ax.bar(i, r.mean, width=0.5, color=COLOURS[r.verdict], alpha=0.35, label=label("mean over seeds"))
            ax.errorbar(i, r.mean, yerr=r.std, color="black", capsize=4, lw=1)
            if r.interval is not None:  # how much the mean could move with other test queries
                spread = [[r.mean - r.interval["low"]], [r.interval["high"] - r.mean]]
                ax.errorbar(
                    i + 0.2, r.mean, yerr=spread, fmt="none", ecolor="#57606a", capsize=3, lw=1,
                    label=label("95% interval over queries"),
                )  # fmt: skip
        xs = [i - 0.15 + 0.3 * k / max(1, len(r.finished) - 1) for k in range(len(r.finished))]
        ax.scatter(xs, r.finished, color="black", s=14, zorder=3, label=label("seeds"))
    ax.set_xticks(range(len(results)))
    ax.set_xticklabels([f"{r.key}\n{r.verdict}" for r in results], fontsize=8)
    for tick, r in zip(ax.get_xticklabels(), results, strict=True):
        tick.set_color(COLOURS[r.verdict])
    ax.set_ylabel(metric)
    ax.set_ylim(bottom=0)
    ax.set_title(f"{metric}: seeds, mean, baselines and tolerance bands", fontsize=10)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))


def write_report(out: Path, header: ReportHeader, results: list[EntryResult]) -> dict[str, Path]:
    """Write the report files into `out` (created); returns {kind: path}."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {"markdown": out / MARKDOWN, "html": out / HTML, "png": out / PLOT, "json": out / JSON}
    plot(results, header.metric, paths["png"])
    png = paths["png"].read_bytes()
    write_text_atomic(paths["markdown"], markdown(header, results))
    write_text_atomic(paths["html"], html_page(header, results, png))
    payload: dict[str, Any] = {
        **header.__dict__,
        "verdict": overall(results),
        "entries": [r.to_dict() for r in results],
    }
    write_text_atomic(paths["json"], json.dumps(payload, indent=2, default=str))
    return paths
