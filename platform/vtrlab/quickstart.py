"""`vtrlab quickstart` (what `make demo` runs): synthetic data, a pretrained tiny backbone, the quickstart
sweep, a registered champion, and the comparison table. A second run reuses what already exists."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from vtrlab.paths import vtrlab_home
from vtrlab.tracking.store import tracking_uri

SPEC = Path(__file__).resolve().parents[2] / "sweeps" / "quickstart.yaml"


def quickstart(address: str | None = None, size: str = "small", fresh: bool = False):
    """Run the whole quickstart on embedded defaults; returns the sweep outcome."""
    from vtrlab.data import read_manifest, synth
    from vtrlab.sweep.cli import print_sweep_outcome
    from vtrlab.sweep.driver import SweepRunner
    from vtrlab.train.pretrain import pretrain_backbone

    console = Console()
    home = vtrlab_home()
    data = home / "data" / "synthetic"
    weights = home / "backbones" / f"vtr-tiny-synthetic-{size}.safetensors"
    console.rule("[bold]vtrlab quickstart")
    console.print(f"home: {home}  (set VTRLAB_HOME to move it)\nMLflow: {tracking_uri()}")

    try:
        read_manifest(str(data))
        console.print(f"[green]1/4[/] synthetic benchmark already at {data}")
    except Exception:
        console.print(f"[cyan]1/4[/] synthesising the temporal benchmark ({size}) at {data}")
        synth(str(data), size=size, seed=0)

    if weights.is_file() and not fresh:
        console.print(f"[green]2/4[/] pretrained tiny backbone already at {weights}")
    else:
        console.print("[cyan]2/4[/] pretraining the tiny CLIP on the synthetic image set (then it stays frozen)")
        pretrain_backbone(str(data), weights)

    console.print("[cyan]3/4[/] running sweeps/quickstart.yaml (Ray Tune + Optuna + ASHA, one Ray Train run a trial)")
    runner = SweepRunner(
        SPEC, address=address, overrides={"weights": str(weights), "data": {"synthetic": str(data)}}, quiet=True
    )
    outcome = runner.run()
    console.print("[cyan]4/4[/] results")
    print_sweep_outcome(outcome)
    console.print(
        "\nCompare the trials in the MLflow UI:  "
        f"[bold]mlflow ui --backend-store-uri {tracking_uri()}[/]  (then open http://127.0.0.1:5000)"
    )
    return outcome
