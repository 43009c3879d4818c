"""`vtrlab reconcile`: end the runs a dead driver left RUNNING (a sweep `--resume` does this for its own)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape


def reconcile_command(
    experiment: Annotated[
        list[str] | None, typer.Option("--experiment", "-e", help="experiment (repeatable); default: all")
    ] = None,
    stale_after: Annotated[
        float, typer.Option(help="seconds without a heartbeat after which a driver counts as gone")
    ] = 600.0,
) -> None:
    """End FAILED every RUNNING run whose driver is gone (a dead process on this machine, or no heartbeat
    for --stale-after seconds), and the RUNNING children of ended runs; prints what it closed."""
    from vtrlab.errors import NotFoundError
    from vtrlab.tracking.client import Tracker
    from vtrlab.tracking.lifecycle import reconcile
    from vtrlab.tracking.store import check_tracking_server

    tracker = Tracker()
    check_tracking_server(tracker.uri)
    known = {e.name: e.experiment_id for e in tracker.experiments()}
    missing = [name for name in experiment or [] if name not in known]
    if missing:
        raise NotFoundError(f"no experiment {', '.join(missing)} in {tracker.uri}; known: {', '.join(known) or 'none'}")
    ids = [known[name] for name in experiment] if experiment else list(known.values())
    closed = reconcile(tracker, ids, stale_after)
    console = Console(soft_wrap=True, highlight=False)
    for run in closed:
        console.print(f"closed {run.run_id} ({escape(run.name)}): FAILED, {escape(run.reason)}")
    console.print(f"{len(closed)} run(s) closed in {tracker.uri}")
