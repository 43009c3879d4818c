"""`vtrlab reproduce --paper P --benchmark B`: a paper's protocol over its seeds, beside its reported row."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table


def reproduce_command(
    paper: Annotated[str, typer.Option(help="mv-adapter or rap")],
    benchmark: Annotated[str, typer.Option(help="msrvtt, msvd, lsmdc, didemo, activitynet (or the spec's)")],
    spec: Annotated[str | None, typer.Option(help="protocol sweep spec (default: sweeps/paper.yaml)")] = None,
    address: Annotated[str | None, typer.Option(help="Ray address (default: RAY_ADDRESS, else a local Ray)")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="machine-readable")] = False,
    verbose: Annotated[bool, typer.Option(help="Ray Tune's status tables and the workers' logs")] = False,
) -> None:
    """Train the paper's configuration for BENCHMARK over the paper's seeds (its recipe, frames, words and
    epochs from the paper sweep) and print the paper's row beside the measured mean and 95% interval over
    seeds; rows where the paper's value falls outside the interval are marked."""
    from vtrlab.cli_common import print_json
    from vtrlab.reproduce import PAPER_SPEC, reproduce

    progress = Console(stderr=True, soft_wrap=True, highlight=False)
    result = reproduce(
        paper, benchmark, spec or PAPER_SPEC, address, verbose, say=lambda line: progress.print(escape(line))
    )
    if json_output:
        print_json(result.to_dict())
        return
    print_reproduction(result)


def print_reproduction(result) -> None:
    console = Console(width=max(Console().width, 110), soft_wrap=True)
    seeds = ", ".join(map(str, result.seeds))
    table = Table(title=f"{result.paper} on {result.benchmark}: {len(result.seeds)} seeds ({seeds}), {result.spec}")
    for column in ("metric", "paper", "measured mean", "95% interval over seeds", "per seed", "paper vs measured"):
        table.add_column(column, justify="left" if column in ("metric", "paper vs measured") else "right")
    for m in result.metrics:
        verdict = {None: "-", True: "[bold red]outside[/]", False: "[green]inside[/]"}[m.outside]
        table.add_row(
            m.metric,
            "-" if m.reported is None else f"{m.reported:.1f}",
            f"{m.mean:.1f}",
            f"[{m.low:.1f}, {m.high:.1f}]",
            " ".join(f"{v:.1f}" for v in m.values),
            verdict,
        )
    console.print(table)
    console.print(
        f"reported: {result.reference}" if result.reference else "the paper reports no row for this benchmark"
    )
    console.print(f"MLflow: experiment {result.experiment}, run {result.parent_run_id} ({result.wall_seconds:.0f} s)")
