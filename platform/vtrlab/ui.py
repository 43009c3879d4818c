"""`vtrlab ui`: the MLflow UI on the store vtrlab uses, where runs compare across methods and sweeps."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

from rich.console import Console

from vtrlab.tracking.client import Tracker
from vtrlab.tracking.store import tracking_uri


def ui_command_line(uri: str, host: str, port: int) -> list[str]:
    """`mlflow ui` on `uri` (artifacts stay where each experiment's artifact location says)."""
    mlflow = Path(sys.executable).with_name("mlflow")
    executable = str(mlflow) if mlflow.exists() else "mlflow"
    return [executable, "ui", "--backend-store-uri", uri, "--host", host, "--port", str(port), "--workers", "1"]


def experiment_links(base: str, uri: str) -> list[tuple[str, str]]:
    """(name, URL) of every experiment in the store, newest first."""
    return [(e.name, f"{base}/#/experiments/{e.experiment_id}/runs") for e in Tracker(uri).experiments()]


def run_ui(host: str = "127.0.0.1", port: int = 5000) -> int:
    """Serve the MLflow UI for the configured store until interrupted; returns mlflow's exit code.

    With MLFLOW_TRACKING_URI pointing at a tracking server, that server already is the UI: print its links."""
    console = Console()
    uri = tracking_uri()
    if urlparse(uri).scheme in ("http", "https"):
        console.print(f"MLflow tracking server: [bold]{uri}[/] (its UI is there)")
        for name, link in experiment_links(uri.rstrip("/"), uri):
            console.print(f"  {name}: {link}")
        return 0
    base = f"http://{host}:{port}"
    console.print(f"MLflow UI on {uri} at [bold]{base}[/] (Ctrl+C stops it)")
    for name, link in experiment_links(base, uri):
        console.print(f"  {name}: {link}")
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # no job runner for a viewer
    try:
        return subprocess.run(ui_command_line(uri, host, port), env=env, check=False).returncode
    except KeyboardInterrupt:
        return 0
