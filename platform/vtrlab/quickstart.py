"""`vtrlab quickstart` (what `make demo` runs): synthetic data, a pretrained tiny backbone, the quickstart
sweep, a registered champion, and the comparison report. A second run reuses what already exists (the data,
the backbone and the finished sweep); `--fresh` runs the sweep again."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from vtrlab.errors import ConfigError
from vtrlab.paths import vtrlab_home
from vtrlab.tracking.store import tracking_uri

SPEC = Path(__file__).resolve().parents[2] / "sweeps" / "quickstart.yaml"


def quickstart(address: str | None = None, size: str = "demo", fresh: bool = False, verbose: bool = False):
    """Run the whole quickstart on embedded defaults; returns the sweep outcome."""
    from vtrlab.data import read_manifest, synth
    from vtrlab.report.cli import print_comparison
    from vtrlab.report.compare import compare
    from vtrlab.sweep.cli import print_sweep_outcome
    from vtrlab.sweep.driver import SweepRunner
    from vtrlab.tracking.registry import registered_model_name
    from vtrlab.train.pretrain import pretrain_backbone

    console = Console(soft_wrap=True)  # long paths and commands stay on one line, as printed to a file
    home = vtrlab_home()
    data = home / "data" / ("synthetic" if size == "demo" else f"synthetic-{size}")
    weights = home / "backbones" / f"vtr-tiny-synthetic-{size}.safetensors"
    console.rule("[bold]vtrlab quickstart")
    steps = 5
    console.print(f"home: {home}  (set VTRLAB_HOME to move it)\nMLflow: {tracking_uri()}")

    try:
        existing = read_manifest(str(data))
    except Exception:
        existing = None
    if existing is None:
        console.print(f"[cyan]1/{steps}[/] synthesising the temporal benchmark ({size}) at {data}")
        synth(str(data), size=size, seed=0)
    elif (existing.get("synthetic") or {}).get("size") != size:  # e.g. an older quickstart's small size
        found = (existing.get("synthetic") or {}).get("size")
        raise ConfigError(
            f"{data} holds the synthetic benchmark of size {found!r}, not {size!r}: move it away (or set "
            "VTRLAB_HOME to a new folder) and run `vtrlab quickstart` again"
        )
    else:
        console.print(f"[green]1/{steps}[/] synthetic benchmark ({size}) already at {data}")

    if weights.is_file() and not fresh:
        console.print(f"[green]2/{steps}[/] pretrained tiny backbone already at {weights}")
    else:
        console.print(f"[cyan]2/{steps}[/] pretraining the tiny CLIP on the synthetic image set (then it stays frozen)")
        pretrain_backbone(str(data), weights)

    runner = SweepRunner(
        SPEC,
        address=address,
        verbose=verbose,
        overrides={"weights": str(weights), "data": {"synthetic": str(data)}},
        say=lambda line: console.print(f"  {line}", highlight=False, markup=False),
    )
    runner.resume = runner.finished() and not fresh
    if runner.resume:
        console.print(f"[green]3/{steps}[/] the quickstart sweep already ran ({runner.ledger.url}); `--fresh` reruns")
    else:
        console.print(
            f"[cyan]3/{steps}[/] running sweeps/quickstart.yaml (Ray Tune + Optuna + ASHA, one Ray Train run a trial)"
        )
    outcome = runner.run()
    print_sweep_outcome(outcome)
    console.print(f"[cyan]4/{steps}[/] comparing the methods (table, Pareto plot, learning curves -> MLflow)")
    comparison = compare([outcome.experiment])
    print_comparison(comparison)
    model = registered_model_name("synthetic", runner.spec.backbone)
    console.print(f"[cyan]5/{steps}[/] next steps")
    console.print(
        f"  browse and compare the runs:  [bold]vtrlab ui[/]  (MLflow UI on {tracking_uri()})\n"
        f"  pull the champion adapter:    [bold]vtrlab pull {model}@champion --out adapters/quickstart[/]\n"
        f"  search the test videos:       [bold]vtrlab search --model {model}@champion --shards {data} "
        '--query "a blue circle slides right, then a yellow triangle slides right"[/]\n'
        "  regression check:             [bold]vtrlab regress sweeps/regression-quickstart.yaml --champions-only[/]"
    )
    return outcome
