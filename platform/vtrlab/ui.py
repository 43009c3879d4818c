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
from vtrlab.tracking.store import tracking_uri
from vtrlab.tracking.views import charts_page, runs_page


def ui_command_line(uri: str, host: str, port: int) -> list[str]:
    """`mlflow ui` on `uri` (artifacts stay where each experiment's artifact location says)."""
    mlflow = Path(sys.executable).with_name("mlflow")
    executable = str(mlflow) if mlflow.exists() else "mlflow"
    return [executable, "ui", "--backend-store-uri", uri, "--host", host, "--port", str(port), "--workers", "1"]


def experiment_links(base: str, uri: str) -> list[tuple[str, str]]:
    """(name, URL) of every experiment's training-runs view, newest first, then the chart view comparing the
    sweeps' training runs; each experiment is tagged to open on that view first (`vtrlab.tracking.views`)."""
    tracker = Tracker(uri)
    experiments = tracker.experiments()
    links = []
    for experiment in experiments:
        tracker.open_on_training_runs(experiment.experiment_id)
        links.append((experiment.name, runs_page(base, experiment.experiment_id)))
    sweeps = [e.experiment_id for e in experiments if e.name.startswith(SWEEP_PREFIX)]
    if len(sweeps) > 1:
        links.append((f"charts: the {len(sweeps)} sweeps' runs side by side", charts_page(base, sweeps)))
    return links


def run_ui(host: str = "127.0.0.1", port: int = 5000) -> int:
    """Serve the MLflow UI for the configured store until interrupted; returns mlflow's exit code.

    With MLFLOW_TRACKING_URI pointing at a tracking server, that server already is the UI: print its links."""
    console = Console(soft_wrap=True)
    uri = tracking_uri()
    if urlparse(uri).scheme in ("http", "https"):
        console.print(f"MLflow tracking server: [bold]{uri}[/] (its UI is there)")
        for name, link in experiment_links(uri.rstrip("/"), uri):
            console.print(f"  {name}: {link}", highlight=False)
        return 0
    base = f"http://{host}:{port}"
    console.print(f"MLflow UI on {uri} at [bold]{base}[/] (Ctrl+C stops it)")
    for name, link in experiment_links(base, uri):
        console.print(f"  {name}: {link}", highlight=False)
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # no job runner for a viewer
    try:
        return subprocess.run(ui_command_line(uri, host, port), env=env, check=False).returncode
    except KeyboardInterrupt:
        return 0
