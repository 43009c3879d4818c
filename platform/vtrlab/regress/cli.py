"""`vtrlab regress SUITE`: the scheduled benchmark regression; exit code 1 when an entry regressed."""

from __future__ import annotations

import contextlib
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from vtrlab.regress.verdicts import FAILED, NO_BASELINE, PASS, REGRESSION

STYLES = {PASS: "bold green", REGRESSION: "bold red", FAILED: "bold red", NO_BASELINE: "yellow"}


def regress_command(
    suite: Annotated[str, typer.Argument(help="regression suite YAML, e.g. sweeps/regression.yaml")],
    address: Annotated[str | None, typer.Option(help="Ray address (default: RAY_ADDRESS, else a local Ray)")] = None,
    champions_only: Annotated[
        bool, typer.Option("--champions-only", help="evaluate each benchmark's registry champion instead of training")
    ] = False,
    out: Annotated[
        str | None, typer.Option(help="report folder (default: $VTRLAB_HOME/regressions/<suite>/<timestamp>)")
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="print the results as JSON (progress on stderr)")] = False,
    verbose: Annotated[bool, typer.Option(help="Ray Tune's status tables and the workers' logs")] = False,
) -> None:
    """Retrain the suite's entries over seeds (or evaluate the champions) and compare with the registry
    champions and the previous run. Exit codes: 0 pass, 1 regression (or a run that failed), 2 bad input,
    3 a benchmark without a champion, 4 every run failed, 130 interrupted. The registry is never changed."""
    from vtrlab.cli_common import print_json
    from vtrlab.regress.runner import RegressionRunner

    progress = Console(stderr=True, soft_wrap=True)
    runner = RegressionRunner(
        suite,
        address=address,
        champions_only=champions_only,
        out=out,
        verbose=verbose and not json_output,
        say=lambda line: progress.print(f"[cyan]regress[/] {escape(line)}", highlight=False),
    )
    # with --json, stdout carries the JSON only: what the run prints (Ray Tune's tables) goes to stderr
    with contextlib.redirect_stdout(sys.stderr) if json_output else contextlib.nullcontext():
        outcome = runner.run()
    if json_output:
        print_json(outcome.to_dict())
    else:
        print_outcome(outcome)
    if outcome.regressed:
        raise typer.Exit(1)


def print_outcome(outcome) -> None:
    """The results table, the verdict and where the report and the MLflow run are."""
    from vtrlab.regress.report import details, table_rows

    console = Console(width=max(Console().width, 1000), soft_wrap=True)  # each row on one line
    table = Table(
        title=f"regression {outcome.suite} ({outcome.mode}, {outcome.metric}): {len(outcome.results)} "
        f"{'entry' if len(outcome.results) == 1 else 'entries'} in {outcome.wall_seconds:.0f} s"
    )
    rows = table_rows(outcome.results)
    for column in rows[0] if rows else []:
        table.add_column(column, justify="right" if column in ("mean ± std", "allowed drop") else "left")
    for row in rows:
        table.add_row(*[f"[{STYLES[v]}]{v}[/]" if k == "verdict" else escape(v) for k, v in row.items()])
    console.print(table)
    for result in outcome.results:
        console.print(f"[{STYLES[result.verdict]}]{escape(result.key)}[/]: {escape(details(result))}", highlight=False)
    console.print(
        f"report: {outcome.report['html']} (also {outcome.report['markdown'].name}, "
        f"{outcome.report['png'].name}, {outcome.report['json'].name})"
    )
    console.print(f"MLflow: experiment {outcome.experiment}, run {outcome.run_id}")
    verdict = outcome.verdict
    console.print(f"verdict: [{STYLES[verdict]}]{verdict}[/]")
