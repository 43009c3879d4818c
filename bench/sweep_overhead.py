"""Per-trial overhead and sweep wall time against the sum of its trials, read from a finished sweep in MLflow.

    python bench/sweep_overhead.py --experiment sweep-quickstart [--write docs/performance.md]

Per-trial overhead is `startup_seconds`: from the trial function's start (driver side) to the end of its first
training step (Ray Train controller and worker group start, model build, first shard read, first step).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "platform"))

from mlflow.tracking import MlflowClient

from vtrlab.tracking.store import tracking_uri

SECTION = "## Sweep overhead"


def measure(experiment: str) -> dict:
    mlflow = MlflowClient(tracking_uri())
    exp = mlflow.get_experiment_by_name(experiment)
    if exp is None:
        raise SystemExit(f"no experiment {experiment!r} in {tracking_uri()}")
    runs = mlflow.search_runs([exp.experiment_id], order_by=["attributes.start_time DESC"])
    parent = next(r for r in runs if r.data.tags.get("vtrlab.kind") == "sweep" and r.info.end_time)
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    durations = [(r.info.end_time - r.info.start_time) / 1000 for r in children if r.info.end_time]
    startups = [r.data.metrics["startup_seconds"] for r in children if "startup_seconds" in r.data.metrics]
    last_end = max((r.info.end_time for r in children if r.info.end_time), default=None)
    return {
        "trials": len(children),
        "training_trials": len(startups),
        "startup_median": statistics.median(startups) if startups else float("nan"),
        "startup_max": max(startups) if startups else float("nan"),
        "trial_seconds_sum": sum(durations),
        # from the sweep run's start to its last trial's end, as its runs record it (`sweep_wall_seconds` also
        # counts the driver time of any later resume, e.g. a second quickstart re-reading the finished sweep)
        "sweep_wall": (last_end - parent.info.start_time) / 1000 if last_end else float("nan"),
    }


def render(experiment: str, figures: dict) -> str:
    lines = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((line.split(":", 1)[1].strip() for line in lines if "model name" in line), "?")
    ratio = figures["sweep_wall"] / figures["trial_seconds_sum"] if figures["trial_seconds_sum"] else float("nan")
    return "\n".join(
        [
            SECTION,
            "",
            f"Measured by `python bench/sweep_overhead.py --experiment {experiment}` after the sweep, on {cpu}, "
            f"{os.cpu_count()} cores, Python {platform.python_version()}.",
            "",
            "| figure | value |",
            "|---|---:|",
            f"| trials | {figures['trials']} |",
            f"| trials that trained (the ones with a first step) | {figures['training_trials']} |",
            f"| per-trial overhead, median (trial start to first step) | {figures['startup_median']:.1f} s |",
            f"| per-trial overhead, max | {figures['startup_max']:.1f} s |",
            f"| sum of the trials' run times | {figures['trial_seconds_sum']:.0f} s |",
            f"| sweep wall time (sweep run's start to its last trial's end) | {figures['sweep_wall']:.0f} s |",
            f"| wall / sum of trials | {ratio:.2f} |",
            "",
            "Per-trial overhead is `startup_seconds`: from the trial function's start (driver side) to the end of "
            "its first training step (Ray Train's controller and worker process, imports, model build, first shard "
            "read, first step). With `max_concurrent: 1` on 2 cores the trials run one after another, so wall time "
            "is the sum of the trials plus the driver's own work (a Tuner per benchmark x method, Ray Train's start "
            "before each run is created); on a cluster with `max_concurrent` > 1 the ratio falls below 1.",
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiment", default="sweep-quickstart")
    parser.add_argument("--write", help="Markdown file whose sweep section to replace")
    args = parser.parse_args()
    figures = measure(args.experiment)
    text = render(args.experiment, figures)
    print(text)
    if args.write:
        path = Path(args.write)
        old = path.read_text() if path.exists() else "# Performance\n"
        if SECTION in old:
            head, _, rest = old.partition(SECTION)
            tail = rest[rest.find("\n## ") + 1 :] if "\n## " in rest else ""
            old = head + text + ("\n" + tail if tail else "")
            path.write_text(old)
        else:
            path.write_text(old.rstrip() + "\n\n" + text)


if __name__ == "__main__":
    main()
