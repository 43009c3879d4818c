"""Run lifecycle: a driver's heartbeat on the run it owns, and the reconciliation that closes runs a dead
driver left RUNNING.

A driver (`vtrlab sweep`, `vtrlab regress`, `vtrlab train`) tags its top-level run with `vtrlab.driver`
(host:pid) and refreshes `vtrlab.heartbeat` (unix seconds) every `interval` seconds. A RUNNING top-level
run is *stale* when its driver is a dead process on this host, or its heartbeat is older than
`stale_after`; its RUNNING children are stale with it. `reconcile` ends stale runs FAILED with the reason,
so `vtrlab compare` never reads a run that will not change again as if it were running. A driver that
stops with an error (Ray died under `tuner.fit()`, an interrupt) closes its own RUNNING children the same
way (`close_children`). A resumed sweep sets its runs RUNNING again and continues them.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from dataclasses import dataclass

from vtrlab.tracking.client import Tracker, tag_filter
from vtrlab.tracking.records import TAG_DRIVER, TAG_HEARTBEAT, TAG_PARENT, RunRecord, RunState

HEARTBEAT_SECONDS = 30.0
DEFAULT_STALE_SECONDS = 600.0


def driver_identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Heartbeat:
    """Refresh the heartbeat tag of `run_id` every `interval` seconds in a daemon thread until stopped."""

    def __init__(self, tracker: Tracker, run_id: str, interval: float = HEARTBEAT_SECONDS):
        self.tracker, self.run_id, self.interval = tracker, run_id, interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def beat(self) -> None:
        self.tracker.set_tags(self.run_id, {TAG_HEARTBEAT: f"{time.time():.0f}", TAG_DRIVER: driver_identity()})

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.beat()
            except Exception:  # a blinking tracking server: the next beat tries again
                continue

    def __enter__(self) -> Heartbeat:
        self.beat()
        self._thread = threading.Thread(target=self._loop, name=f"vtrlab-heartbeat-{self.run_id[:8]}", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stale_reason(run: RunRecord, stale_after: float, now: float | None = None) -> str | None:
    """Why the RUNNING top-level `run` will never be ended by its driver, or None if it may still be."""
    now = time.time() if now is None else now
    host, _, pid = run.tags.get(TAG_DRIVER, "").rpartition(":")
    if host == socket.gethostname() and pid.isdigit() and not _pid_alive(int(pid)) and int(pid) != os.getpid():
        return f"its driver (pid {pid} on {host}) is gone"
    try:
        last = float(run.tags[TAG_HEARTBEAT])
    except (KeyError, ValueError):
        last = run.start_ms / 1000
    if now - last > stale_after:
        return f"no heartbeat from its driver for {now - last:.0f} s (more than {stale_after:.0f} s)"
    return None


@dataclass(frozen=True)
class Closed:
    run_id: str
    name: str
    experiment_id: str
    reason: str


def reconcile(tracker: Tracker, experiment_ids: list[str], stale_after: float = DEFAULT_STALE_SECONDS) -> list[Closed]:
    """End FAILED every RUNNING run of `experiment_ids` whose driver is gone, and the RUNNING children of
    runs that are gone or already ended; returns what was closed."""
    running = tracker.search_runs(experiment_ids, "attributes.status = 'RUNNING'")
    by_id = {run.run_id: run for run in running}
    stale: dict[str, str] = {}
    for run in running:
        if run.parent_id is None:
            reason = stale_reason(run, stale_after)
            if reason:
                stale[run.run_id] = reason
    for run in running:
        parent = run.parent_id
        if parent is None or parent in stale:
            continue
        if parent in by_id:
            continue  # the parent still runs: its driver owns this run
        try:
            parent_state = tracker.run(parent).status
        except Exception:
            parent_state = None
        if parent_state is None or parent_state.terminal:
            stale[run.run_id] = f"its parent run {parent} has ended"
    orphan = "its parent run {parent} was left by a dead driver ({reason})"
    return _close(tracker, running, stale, orphan, prefix="driver lost: ")


def close_children(tracker: Tracker, parent_run_id: str, reason: str) -> list[Closed]:
    """End FAILED, with `reason` as their error, the RUNNING child runs of `parent_run_id` (a sweep's trials,
    a regression's seeds), for a driver that gives up on them: Ray died under `tuner.fit()`, or it was
    interrupted (a resume sets the runs it continues RUNNING again). Returns what was closed."""
    parent = tracker.run(parent_run_id)
    running = tracker.search_runs(
        [parent.experiment_id], f"attributes.status = 'RUNNING' and {tag_filter({TAG_PARENT: parent_run_id})}"
    )
    return _close(tracker, running, {parent_run_id: reason}, "{reason}")


def _close(
    tracker: Tracker, running: list[RunRecord], stale: dict[str, str], orphan: str, prefix: str = ""
) -> list[Closed]:
    """End FAILED each run of `running` that is in `stale` (its reason) or whose parent is (`orphan`, given
    `parent` and the parent's `reason`), with `prefix` + the reason as its error."""
    closed: list[Closed] = []
    for run in running:
        if run.run_id in stale:
            reason = stale[run.run_id]
        elif run.parent_id in stale:
            reason = orphan.format(parent=run.parent_id, reason=stale[run.parent_id])
        else:
            continue
        tracker.end_run(run.run_id, RunState.FAILED, error=f"{prefix}{reason}")
        closed.append(Closed(run.run_id, run.name, run.experiment_id, reason))
    return closed
