"""`vtrlab compare`: methods x benchmarks across sweeps, in the terminal and as files logged to MLflow."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console


def compare_command(
    experiment: Annotated[
        list[str] | None, typer.Option("--experiment", "-e", help="MLflow experiment (repeatable); default: all sweeps")
    ] = None,
    benchmark: Annotated[str | None, typer.Option(help="only this benchmark")] = None,
    out: Annotated[str | None, typer.Option(help="report folder (default: $VTRLAB_HOME/reports/compare)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the comparison as JSON")] = False,
    log: Annotated[bool, typer.Option(help="log the report to the sweeps' parent runs")] = True,
) -> None:
    """Best T2V/V2T R@1/5/10, MdR, MnR, trainable parameters and GPU-hours per method and benchmark, the
    papers' reported numbers beside them, a Pareto plot and learning curves (logged to MLflow)."""
    from vtrlab.report.compare import compare

    comparison = compare(experiment or None, benchmark, out, log=log)
    if as_json:
        typer.echo(json.dumps(comparison.to_json(), indent=2))
        return
    print_comparison(comparison)


def print_comparison(comparison) -> None:
    """The table, then where the report files and MLflow runs are."""
    from vtrlab.report.compare import CONTRASTS_TITLE, EXPLANATION, contrast_lines
    from vtrlab.report.table import REPORTED, rich_table

    console = Console(width=max(Console().width, 1000), soft_wrap=True)  # each row on one line, at its natural width
    console.print(rich_table(comparison.rows, comparison.title))
    console.print(EXPLANATION)
    lines = contrast_lines(comparison)
    if lines:
        console.print(f"{CONTRASTS_TITLE}:")
        for line in lines:
            console.print(f"  {line}", highlight=False)
    benchmarks = {row.benchmark for row in comparison.measured}
    if not any(row.kind == REPORTED for row in comparison.rows):
        console.print(
            f"(no reported paper numbers for {', '.join(sorted(benchmarks))}; the report lists them for the "
            "five real benchmarks)"
        )
    if comparison.failed or comparison.running:
        console.print(
            f"left out: {comparison.failed} failed trial run(s), {comparison.running} still running "
            "(a run left RUNNING by a dead driver: `vtrlab reconcile`)",
            style="yellow",
        )
    files = comparison.files
    console.print(f"report: {files['markdown']}  {files['html']}")
    console.print(f"plots:  {files['pareto']}  {files['curves']}")
    if comparison.logged_to:
        console.print(f"logged to MLflow under compare/ of parent run(s) {', '.join(comparison.logged_to)}")
