"""`vtrlab model ...`: list the methods and their knobs, count a configuration's parameters."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from vtrlab.cli_common import parse_assignments, print_json

model_app = typer.Typer(help="Methods, knobs and parameter counts.", no_args_is_help=True)


@model_app.command("list")
def list_command(
    json_output: Annotated[bool, typer.Option("--json", help="machine-readable")] = False,
) -> None:
    """Every method with its knobs and their defaults."""
    from vtrlab.model.methods import describe_knob, get_method, list_methods

    entries = [get_method(name) for name in list_methods()]
    if json_output:
        print_json({e.name: {"summary": e.summary, "knobs": e.knobs().model_dump()} for e in entries})
        return
    table = Table(title="vtrlab methods", show_lines=True)
    table.add_column("method", style="bold cyan")
    table.add_column("what it does")
    table.add_column("knobs (type = default)")
    for entry in entries:
        knobs = "\n".join(describe_knob(entry.knobs, key) for key in entry.knobs.model_fields) or "-"
        table.add_row(entry.name, entry.summary, knobs)
    Console().print(table)


@model_app.command("params")
def params_command(
    method: Annotated[str, typer.Option(help="a method from `vtrlab model list`")],
    backbone: Annotated[str, typer.Option(help="open_clip model name, e.g. ViT-B-16, or vtr-tiny")] = "ViT-B-16",
    weights: Annotated[str | None, typer.Option(help="pretrained tag or weights file (default: random)")] = None,
    benchmark: Annotated[
        str | None,
        typer.Option(help="size and set knobs as a run on this benchmark does (its frames, words, authors' settings)"),
    ] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="knob=value, repeatable")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="machine-readable")] = False,
) -> None:
    """Total and trainable parameters of METHOD on BACKBONE (trainable_pct is relative to the CLIP)."""
    from vtrlab.model.factory import create_model
    from vtrlab.model.params import count_parameters

    knobs = parse_assignments(set_)
    if benchmark is not None:
        from vtrlab.config import resolve_knobs

        knobs = resolve_knobs(method, benchmark, knobs)
    encoder = create_model(method, backbone, weights, knobs=knobs)
    counts = count_parameters(encoder).to_dict()
    payload = {"method": method, "backbone": backbone, "benchmark": benchmark, "knobs": encoder.knobs, **counts}
    if json_output:
        print_json(payload)
        return
    table = Table(title=f"{method} on {backbone}" + (f" as run on {benchmark}" if benchmark else ""))
    table.add_column("parameters")
    table.add_column("count", justify="right")
    for key, value in counts.items():
        table.add_row(key, f"{value:.3f}%" if key == "trainable_pct" else f"{value:,}")
    Console().print(table)
