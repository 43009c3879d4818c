"""`vtrlab train`: one training run on Ray Train, tracked in MLflow."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from vtrlab.cli_common import parse_assignments, print_json
from vtrlab.paths import default_data_url


def metrics_table(title: str, metrics: dict[str, float]) -> Table:
    table = Table(title=title)
    table.add_column("direction")
    for key in ("R1", "R5", "R10", "MdR", "MnR"):
        table.add_column(key, justify="right")
    for direction in ("t2v", "v2t"):
        table.add_row(
            direction,
            *(f"{metrics.get(f'{direction}_{k}', float('nan')):.1f}" for k in ("R1", "R5", "R10", "MdR", "MnR")),
        )
    return table


def train_command(
    benchmark: Annotated[
        str, typer.Option(help="dataset card name: msrvtt, msvd, lsmdc, didemo, activitynet, synthetic")
    ],
    method: Annotated[str, typer.Option(help="a method from `vtrlab model list`")],
    set_: Annotated[list[str] | None, typer.Option("--set", help="knob=value, repeatable")] = None,
    data: Annotated[
        str | None, typer.Option(help="shards URL (default: the card's, or $VTRLAB_HOME/data/NAME)")
    ] = None,
    backbone: Annotated[str, typer.Option(help="open_clip model name")] = "vtr-tiny",
    weights: Annotated[str | None, typer.Option(help="pretrained tag or weights file")] = None,
    epochs: Annotated[int, typer.Option(help="training epochs")] = 5,
    batch_size: Annotated[int, typer.Option(help="global batch size")] = 128,
    lr: Annotated[float, typer.Option(help="learning rate of the method's parameters")] = 5e-6,
    workers: Annotated[int, typer.Option(help="Ray Train workers (DDP ranks)")] = 1,
    gpus_per_worker: Annotated[float, typer.Option(help="GPUs per worker (0: CPU, gloo)")] = 0.0,
    option: Annotated[list[str] | None, typer.Option(help="any other TrainSpec field=value")] = None,
    address: Annotated[str | None, typer.Option(help="Ray address (default: RAY_ADDRESS, else local)")] = None,
    experiment: Annotated[str, typer.Option(help="MLflow experiment")] = "vtrlab-train",
    storage: Annotated[str | None, typer.Option(help="checkpoint storage, e.g. s3://bucket/ckpt")] = None,
    json_output: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Train METHOD on BENCHMARK with Ray Train; every epoch is evaluated, checkpointed and logged to MLflow."""
    from vtrlab.config import TrainSpec, validate_model
    from vtrlab.train.driver import train

    fields = {
        "benchmark": benchmark,
        "method": method,
        "knobs": parse_assignments(set_),
        "data": data or default_data_url(benchmark),
        "backbone": backbone,
        "weights": weights,
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "workers": workers,
        "gpus_per_worker": gpus_per_worker,
        **parse_assignments(option, "--option"),
    }
    spec = validate_model(TrainSpec, fields, "vtrlab train")
    outcome = train(spec, experiment=experiment, address=address, storage=storage)
    if json_output:
        print_json(outcome)
        return
    console = Console()
    console.print(metrics_table(f"{method} on {benchmark} (MLflow run {outcome['run_id']})", outcome["metrics"]))
