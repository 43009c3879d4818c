"""`vtrlab compare`: build the comparison of every method on every benchmark across sweeps, write it as
Markdown, HTML (plots embedded), JSON and PNG, and log it to each sweep's parent run (`compare/`)."""

from __future__ import annotations

import base64
import html
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from vtrlab.atomic import write_text_atomic
from vtrlab.paths import vtrlab_home
from vtrlab.report.collect import TrialRecord, collect_trials
from vtrlab.report.plots import learning_curves, pareto_plot
from vtrlab.report.references import references_for
from vtrlab.report.table import MEASURED, ComparisonRow, best_rows, html_table, markdown_table, reference_rows
from vtrlab.report.uncertainty import Contrast, compare_methods
from vtrlab.tracking.client import Tracker

ARTIFACT_DIR = "compare"
EXPLANATION = (
    "Measured rows: the best trial by T2V R@1 per benchmark and method (R@k in %, ranks 1-based), each recall "
    "with its 95% bootstrap interval over the test queries (1000 resamples, seed 0); 'vs zero-shot' is the paired "
    "bootstrap difference in T2V R@1 on the same queries (significant when its 95% interval excludes 0). "
    "GPU-h and wall-h sum every trial of the method on the benchmark. Reported rows (italic) are the papers' "
    "numbers, not measured here. The best of several trials is picked on the test split itself, so its score "
    "is optimistic (the papers report the same way)."
)
CONTRASTS_TITLE = "Paired differences in T2V R@1 (95% paired bootstrap over the same queries)"
HTML_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;font-size:14px}"
    "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}td:nth-child(-n+3),th:nth-child(-n+3)"
    "{text-align:left}tr.reported{color:#777;font-style:italic}img{max-width:100%}"
)


@dataclass
class Comparison:
    """What `vtrlab compare` found and wrote."""

    title: str
    tracking_uri: str
    experiments: list[str]
    trials: list[TrialRecord]
    rows: list[ComparisonRow]  # measured best per (benchmark, method), then reported references
    files: dict[str, Path] = field(default_factory=dict)
    logged_to: list[str] = field(default_factory=list)  # parent run ids
    contrasts: list[Contrast] = field(default_factory=list)  # paired T2V R@1 differences between methods
    failed: int = 0  # trial runs left out: they failed
    running: int = 0  # trial runs left out: still running (or left so by a dead driver: `vtrlab reconcile`)

    @property
    def measured(self) -> list[ComparisonRow]:
        return [row for row in self.rows if row.kind == MEASURED]

    def to_json(self) -> dict:
        return {
            "title": self.title,
            "tracking_uri": self.tracking_uri,
            "experiments": self.experiments,
            "rows": [row.to_dict() for row in self.rows],
            "contrasts": [c.to_dict() for c in self.contrasts],
            "trials": [
                {
                    "run_id": t.run_id,
                    "run_name": t.run_name,
                    "experiment": t.experiment,
                    "sweep": t.sweep,
                    "benchmark": t.benchmark,
                    "method": t.method,
                    "metrics": t.metrics,
                    "hours": t.hours,
                    "gpu_hours": t.gpu_hours,
                    "stopped_early": t.stopped_early,
                }
                for t in self.trials
            ],
            "files": {k: str(v) for k, v in self.files.items()},
            "failed_runs": self.failed,
            "running_runs": self.running,
            "logged_to": self.logged_to,
        }


def build_comparison(
    tracker: Tracker, experiments: list[str] | None = None, benchmark: str | None = None
) -> Comparison:
    """Collect the trials and build the rows; raises NotFoundError for unknown or empty experiments."""
    collected = collect_trials(tracker, experiments, benchmark)
    trials = collected.trials
    measured = best_rows(trials)
    found = attach_uncertainty(tracker, measured)
    benchmarks = {row.benchmark for row in measured}
    names = sorted({t.experiment for t in trials})
    title = f"vtrlab comparison: {', '.join(names)}" + (f" ({benchmark})" if benchmark else "")
    rows = measured + reference_rows(references_for(benchmarks))
    return Comparison(
        title, tracker.uri, names, trials, rows, contrasts=found, failed=collected.failed, running=collected.running
    )


def attach_uncertainty(tracker: Tracker, measured: list[ComparisonRow]) -> list[Contrast]:
    """Give each measured row its recalls' intervals, its query counts and its paired difference from zero-shot
    (from its run's per-query ranks); returns every pairwise contrast per benchmark."""
    found: list[Contrast] = []
    for benchmark in sorted({row.benchmark for row in measured}):
        members = [row for row in measured if row.benchmark == benchmark and row.run_id]
        compared = compare_methods(tracker, benchmark, {row.method: row.run_id for row in members})
        for row in members:
            ranks, versus = compared.ranks.get(row.method), compared.versus_baseline.get(row.method)
            if ranks is not None:
                row.intervals = {metric: interval.to_dict() for metric, interval in ranks.intervals().items()}
                row.queries = {"t2v": ranks.t2v.numel(), "v2t": ranks.v2t.numel()}
            row.versus_baseline = versus.to_dict() if versus is not None else None
        found += compared.contrasts
    return found


def contrast_lines(comparison: Comparison) -> list[str]:
    """One line per pair of methods on a benchmark: the paired T2V R@1 difference and whether it is significant."""
    return [f"{c.benchmark}: {c}" for c in comparison.contrasts]


def _markdown(comparison: Comparison, reported: list[ComparisonRow], pictures: dict[str, str]) -> str:
    lines = [
        f"# {comparison.title}",
        "",
        f"Tracking store: `{comparison.tracking_uri}`. {EXPLANATION}",
        "",
        markdown_table(comparison.rows),
        "",
        f"## {CONTRASTS_TITLE}",
        "",
        *([f"- {line}" for line in contrast_lines(comparison)] or ["(no two methods with ranks of the same queries)"]),
        "",
        "## R@1 against trainable parameters",
        "",
        f"![Pareto plot]({pictures['pareto']})",
        "",
        "## Learning curves",
        "",
        f"![learning curves]({pictures['curves']})",
        "",
        "## Reported in the papers (all benchmarks; not measured)",
        "",
        markdown_table(reported),
        "",
    ]
    return "\n".join(lines)


def _contrast_list(comparison: Comparison) -> str:
    lines = contrast_lines(comparison)
    if not lines:
        return "<p>(no two methods with ranks of the same queries)</p>"
    return "<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in lines) + "</ul>"


def _html(comparison: Comparison, reported: list[ComparisonRow], pngs: dict[str, Path]) -> str:
    def embedded(path: Path) -> str:
        return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()

    title = html.escape(comparison.title)
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>"
        f"<style>{HTML_STYLE}</style></head><body><h1>{title}</h1>"
        f"<p>Tracking store: <code>{html.escape(comparison.tracking_uri)}</code>. {html.escape(EXPLANATION)}</p>"
        f"{html_table(comparison.rows)}<h2>{html.escape(CONTRASTS_TITLE)}</h2>{_contrast_list(comparison)}"
        "<h2>R@1 against trainable parameters</h2>"
        f"<img alt='Pareto plot' src='{embedded(pngs['pareto'])}'><h2>Learning curves</h2>"
        f"<img alt='learning curves' src='{embedded(pngs['curves'])}'>"
        f"<h2>Reported in the papers (all benchmarks; not measured)</h2>{html_table(reported)}</body></html>"
    )


def write_report(comparison: Comparison, out: Path) -> dict[str, Path]:
    """Write comparison.{md,html,json}, pareto.png and learning_curves.png into `out` (each file atomically)."""
    out.mkdir(parents=True, exist_ok=True)
    references = [row for row in comparison.rows if row.kind != MEASURED]
    reported = reference_rows(references_for(None))
    pngs = {
        "pareto": pareto_plot(comparison.trials, references, out / "pareto.png"),
        "curves": learning_curves(comparison.trials, out / "learning_curves.png"),
    }
    comparison.files = {
        "markdown": write_text_atomic(
            out / "comparison.md", _markdown(comparison, reported, {k: v.name for k, v in pngs.items()})
        ),
        "html": write_text_atomic(out / "comparison.html", _html(comparison, reported, pngs)),
        **pngs,
        "json": out / "comparison.json",
    }
    write_text_atomic(comparison.files["json"], json.dumps(comparison.to_json(), indent=2))
    return comparison.files


def parent_runs(comparison: Comparison) -> list[str]:
    """The sweep parent runs whose trials are in the comparison."""
    return sorted({t.parent_run_id for t in comparison.trials if t.parent_run_id})


def log_to_parent_runs(tracker: Tracker, comparison: Comparison) -> None:
    """Log the report files under `compare/` of each run in `comparison.logged_to`."""
    for run_id in comparison.logged_to:
        for path in comparison.files.values():
            tracker.log_file(run_id, path, ARTIFACT_DIR)
        tracker.set_tags(run_id, {"vtrlab.compared_at": time.strftime("%Y-%m-%dT%H:%M:%S")})


def compare(
    experiments: list[str] | None = None,
    benchmark: str | None = None,
    out: str | Path | None = None,
    tracking_uri: str | None = None,
    log: bool = True,
) -> Comparison:
    """Build, write and (with `log`) log the comparison; returns it with its files and parent runs."""
    tracker = Tracker(tracking_uri)
    comparison = build_comparison(tracker, experiments, benchmark)
    if log:
        comparison.logged_to = parent_runs(comparison)  # known before writing: the JSON is written once
    write_report(comparison, Path(out) if out else vtrlab_home() / "reports" / "compare")
    log_to_parent_runs(tracker, comparison)
    return comparison
