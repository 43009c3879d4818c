"""`vtrlab ui`: the MLflow UI on the store vtrlab uses, opened on the training runs (method, benchmark, T2V/V2T
R@1 and trainable share as columns), with a chart view comparing methods across sweeps."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

from rich.console import Console

from vtrlab.report.collect import SWEEP_PREFIX
from vtrlab.tracking.client import Tracker
from vtrlab.tracking.records import Experiment
from vtrlab.tracking.store import tracking_uri
from vtrlab.tracking.views import charts_page, runs_page


def ui_command_line(uri: str, host: str, port: int) -> list[str]:
    """`mlflow ui` on `uri` (artifacts stay where each experiment's artifact location says)."""
    mlflow = Path(sys.executable).with_name("mlflow")
    executable = str(mlflow) if mlflow.exists() else "mlflow"
    return [executable, "ui", "--backend-store-uri", uri, "--host", host, "--port", str(port), "--workers", "1"]


def experiment_links(base: str, experiments: list[Experiment]) -> list[tuple[str, str]]:
    """(name, URL) of every experiment's training-runs view, then the chart view comparing the sweeps' runs."""
    links = [(e.name, runs_page(base, e.experiment_id)) for e in experiments]
    sweeps = [e.experiment_id for e in experiments if e.name.startswith(SWEEP_PREFIX)]
    if len(sweeps) > 1:
        links.append((f"charts: the {len(sweeps)} sweeps' runs side by side", charts_page(base, sweeps)))
    return links


def print_links(console: Console, base: str, uri: str) -> None:
    """Tag every experiment of the store to open on vtrlab's training-runs view (`vtrlab.tracking.views`; older
    experiments lack the tags), then print the links, newest experiment first."""
    tracker = Tracker(uri)
    experiments = tracker.experiments()
    for experiment in experiments:
        tracker.open_on_training_runs(experiment.experiment_id)
    for name, link in experiment_links(base, experiments):
        console.print(f"  {name}: {link}", highlight=False)


def run_ui(host: str = "127.0.0.1", port: int = 5000) -> int:
    """Serve the MLflow UI for the configured store until interrupted; returns mlflow's exit code.

    With MLFLOW_TRACKING_URI pointing at a tracking server, that server already is the UI: print its links."""
    console = Console(soft_wrap=True)
    uri = tracking_uri()
    if urlparse(uri).scheme in ("http", "https"):
        console.print(f"MLflow tracking server: [bold]{uri}[/] (its UI is there)")
        print_links(console, uri.rstrip("/"), uri)
        return 0
    base = f"http://{host}:{port}"
    console.print(f"MLflow UI on {uri} at [bold]{base}[/] (Ctrl+C stops it)")
    print_links(console, base, uri)
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # no job runner for a viewer
    try:
        return subprocess.run(ui_command_line(uri, host, port), env=env, check=False).returncode
    except KeyboardInterrupt:
        return 0
