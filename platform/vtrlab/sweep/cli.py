"""`vtrlab sweep SPEC`: run (or `--resume`) a sweep on the Ray at --address / RAY_ADDRESS, else locally."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

STATES = {"FINISHED": "finished", "KILLED": "stopped by ASHA", "FAILED": "failed"}


def sweep_command(
    spec: Annotated[str, typer.Argument(help="sweep spec YAML, e.g. sweeps/quickstart.yaml")],
    address: Annotated[str | None, typer.Option(help="Ray address (default: RAY_ADDRESS, else a local Ray)")] = None,
    resume: Annotated[bool, typer.Option(help="continue the interrupted sweep of this spec")] = False,
    verbose: Annotated[bool, typer.Option(help="Ray Tune's status tables and the workers' logs")] = False,
    strict: Annotated[bool, typer.Option(help="exit 4 when any trial failed (default: only when all did)")] = False,
    storage: Annotated[
        str | None,
        typer.Option(
            help="shared storage for the sweep's state and checkpoints, e.g. s3://bucket/prefix (overrides the "
            "spec's `storage`; give the same one to --resume)"
        ),
    ] = None,
) -> None:
    """Ray Tune + Optuna + ASHA over the spec's methods x benchmarks; MLflow tracks every trial.

    With `storage` (the spec's or --storage) the sweep's state, Tune's experiment and the checkpoints live
    there, not on this machine: `--resume` continues from there on any machine (a new head included).

    Exit codes: 0 done (a warning line counts failed trials), 2 bad input, 4 every trial failed (any, with
    --strict), 130 interrupted (state saved: --resume continues)."""
    from vtrlab.storage import normalize_url
    from vtrlab.sweep.driver import SweepRunner

    console = Console(stderr=True, soft_wrap=True, highlight=False)
    runner = SweepRunner(
        spec,
        address=address,
        resume=resume,
        verbose=verbose,
        strict=strict,
        overrides={"storage": normalize_url(storage)} if storage else None,  # a local path made absolute
        say=lambda line: console.print(escape(line)),
    )
    check_writable(runner)
    print_sweep_outcome(runner.run())


def best_per_method_lines(trials) -> list[str]:
    """Per benchmark: the best T2V R@1 per method with its interval, then each method's paired difference
    from zero-shot on the same queries (from the runs' per-query ranks)."""
    from vtrlab.report.uncertainty import BASELINE_METHOD, compare_methods
    from vtrlab.tracking.client import Tracker

    tracker = Tracker()
    lines = []
    for benchmark in sorted({t.benchmark for t in trials}):
        best: dict[str, Any] = {}
        for trial in trials:
            if trial.benchmark == benchmark and trial.state.value != "FAILED":
                held = best.get(trial.method)
                if held is None or trial.metrics.get("t2v_R1", 0.0) > held.metrics.get("t2v_R1", 0.0):
                    best[trial.method] = trial
        ordered = sorted(best.items(), key=lambda kv: -kv[1].metrics.get("t2v_R1", 0.0))
        ranking = ", ".join(f"{m} {_recall_cell(t.metrics, 't2v_R1')}" for m, t in ordered)
        lines.append(f"best T2V R@1 per method on {benchmark}: {ranking}")
        compared = compare_methods(tracker, benchmark, {m: t.run_id for m, t in ordered if t.run_id})
        for method, _ in ordered:
            if method in compared.versus_baseline:
                lines.append(f"  paired T2V R@1 vs {BASELINE_METHOD}: {compared.versus_baseline[method]}")
    return lines


def check_writable(runner) -> None:
    """Before anything starts: the sweep's storage takes a write, and the registry the sweep registers in
    lets this user add versions (see `vtrlab.train.preflight`)."""
    from vtrlab.tracking.registry import registered_model_name
    from vtrlab.tracking.store import tracking_uri
    from vtrlab.train.preflight import check_registry_writable, check_storage_writable

    spec = runner.spec
    if spec.storage:
        check_storage_writable(spec.storage, runner.source)
    uri = tracking_uri()
    server = uri.startswith(("http://", "https://"))  # the embedded store has no permissions to check
    if server and spec.register_best and spec.weights is not None:
        models = [registered_model_name(benchmark, spec.backbone) for benchmark in spec.benchmark_names]
        check_registry_writable(uri, models, runner.source)


def _recall_cell(metrics: dict[str, float], metric: str) -> str:
    value, low, high = (metrics.get(f"{metric}{suffix}") for suffix in ("", "_low", "_high"))
    if value is None:
        return "-"
    return f"{value:.1f}" if low is None or high is None else f"{value:.1f} [{low:.1f}, {high:.1f}]"


def print_sweep_outcome(outcome) -> None:
    """The trials' table (recalls with their 95% bootstrap intervals over queries), then per benchmark the best
    T2V R@1 per method and each method's paired difference from zero-shot on the same queries."""
    console = Console(width=max(Console().width, 1000), soft_wrap=True)  # each row on one line
    queries = sorted({int(t.metrics["t2v_queries"]) for t in outcome.trials if "t2v_queries" in t.metrics})
    counted = f"; {'/'.join(map(str, queries))} T2V queries, [95% bootstrap interval]" if queries else ""
    title = f"sweep {outcome.name}: {len(outcome.trials)} trials in {outcome.wall_seconds:.0f} s{counted}"
    table = Table(title=title)
    for column in ("benchmark", "method", "epochs", "t2v R@1", "v2t R@1", "R@Sum", "trainable", "status"):
        table.add_column(column, justify="left" if column in ("benchmark", "method", "status") else "right")
    for trial in sorted(outcome.trials, key=lambda t: (t.benchmark, t.method, -t.metrics.get("t2v_R1", 0))):
        m = trial.metrics
        table.add_row(
            trial.benchmark,
            trial.method,
            str(trial.epochs),
            _recall_cell(m, "t2v_R1"),
            _recall_cell(m, "v2t_R1"),
            f"{m.get('rsum', 0):.1f}",
            f"{int(m.get('trainable_params', 0)):,}",
            STATES.get(trial.state.value, trial.state.value),
        )
    console.print(table)
    for line in best_per_method_lines(outcome.trials):
        console.print(line, highlight=False)
    for reg in outcome.registrations:
        previous = "none" if reg.previous_champion is None else f"{reg.previous_champion:.2f}"
        console.print(
            f"registry: [bold]{reg.model}[/] version {reg.version} -> [bold]{reg.alias}[/] "
            f"({reg.objective:.2f}; previous champion {previous})"
        )
    for note in outcome.notes:
        console.print(escape(note), style="yellow")
    console.print(f"MLflow: experiment {outcome.experiment}, parent run {outcome.parent_run_id}")
