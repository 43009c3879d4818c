"""`vtrlab regress SUITE`: retrain a suite's fixed configurations over seeds (or, `--champions-only`,
re-evaluate the registry's champions) and compare with the champions' recorded values and the suite's
previous run.

Before anything runs, every benchmark of the suite must have a champion in the registry (NotFoundError
otherwise, exit code 3). MLflow: experiment `regression-<suite>`, one run per regression tagged
`vtrlab.kind=regression` and `regression=true` (see `vtrlab.regress.tracking`), one child run per (entry,
seed) tagged like a sweep trial (method, benchmark, backbone) plus `seed`. The registry is only read.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
import uuid
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vtrlab.errors import ConfigError, RunsFailedError
from vtrlab.paths import vtrlab_home
from vtrlab.regress import tracking
from vtrlab.regress.baselines import EntryResult, champion_baseline, earlier_runs, judge, previous_baseline
from vtrlab.regress.paired import attach_paired_tests
from vtrlab.regress.report import ReportHeader, overall, write_report
from vtrlab.regress.suite import load_suite
from vtrlab.regress.verdicts import REGRESSION
from vtrlab.tracking.client import Tracker
from vtrlab.tracking.lifecycle import Heartbeat, close_children
from vtrlab.tracking.provenance import git_commit
from vtrlab.tracking.records import RunState
from vtrlab.tracking.store import check_tracking_server, tracking_uri
from vtrlab.train.preflight import check_cluster_fits, check_data_readable, check_eval_gallery, trial_shape

TRAIN, CHAMPIONS_ONLY = "train", "champions-only"


@dataclass
class RegressionOutcome:
    suite: str
    mode: str
    metric: str
    experiment: str
    run_id: str
    out_dir: Path
    report: dict[str, Path]
    results: list[EntryResult]
    wall_seconds: float

    @property
    def verdict(self) -> str:
        return overall(self.results)

    @property
    def regressed(self) -> bool:
        return self.verdict == REGRESSION

    def to_dict(self) -> dict[str, Any]:
        return {
            "suite": self.suite,
            "mode": self.mode,
            "metric": self.metric,
            "verdict": self.verdict,
            "experiment": self.experiment,
            "run_id": self.run_id,
            "report": {kind: str(path) for kind, path in self.report.items()},
            "wall_seconds": round(self.wall_seconds, 1),
            "entries": [r.to_dict() for r in self.results],
        }


def check_writable_folder(path: Path, source: str) -> None:
    """Refuse, before anything runs, a report folder that could not be written at the end: a file in its
    place, or a nearest existing parent that is not a writable folder (nothing is created here)."""
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing == path and not path.is_dir():
        raise ConfigError(f"{source}: {path} is a file, not a folder")
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{source}: {path} cannot be created ({existing} is not a writable folder)")


def all_failed(suite: str, results: list[EntryResult]) -> str | None:
    """Why the regression failed as a whole (every run of every entry failed: the first error of each
    kind), or None when some run finished."""
    if not results or any(r.finished for r in results):
        return None
    kinds: dict[str, list[str]] = {}
    for result in results:
        error = result.extra.get("error", "failed")
        kinds.setdefault(error.split(":", 1)[0], []).append(f"{result.key}: {error}")
    first = "; ".join(f"{group[0]} ({len(group)} entr{'y' if len(group) == 1 else 'ies'})" for group in kinds.values())
    return f"regression {suite}: every run of {len(results)} entries failed: {first}"


class RegressionRunner:
    """Runs one regression of a suite file (`verbose=False`: no Tune tables, no worker logs; `say` gets
    one line per step)."""

    def __init__(
        self,
        suite_path: str | Path,
        address: str | None = None,
        champions_only: bool = False,
        out: str | Path | None = None,
        verbose: bool = False,
        say: Callable[[str], None] = print,
    ):
        self.suite_path = Path(suite_path)
        self.source = str(self.suite_path)
        self.suite = load_suite(self.suite_path)
        self.address = address
        self.mode = CHAMPIONS_ONLY if champions_only else TRAIN
        self.verbose = verbose
        self.say = say
        self.experiment = f"regression-{self.suite.name}"
        self.stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        self.work_dir = vtrlab_home() / "regressions" / self.suite.name / self.stamp
        if self.work_dir.exists():  # two runs in the same second
            self.work_dir = self.work_dir.with_name(f"{self.stamp}-{uuid.uuid4().hex[:6]}")
        self.out = Path(out).expanduser() if out else self.work_dir
        if out:
            check_writable_folder(self.out, "vtrlab regress --out")
        self.run_key = f"regression/{self.suite.name}/{self.work_dir.name}/{uuid.uuid4().hex[:8]}"

    def run(self) -> RegressionOutcome:
        """Check, run, compare, report; the run ends FINISHED, or FAILED with the error (interrupted too)."""
        from vtrlab.cluster import connect
        from vtrlab.train.tracked import one_line

        started = time.perf_counter()
        uri = tracking_uri()
        check_tracking_server(uri)
        tracker = Tracker(uri)
        champions = tracking.find_champions(tracker, self.suite, self.source)  # before anything runs or is logged
        self.suite = self.suite.model_copy(
            update={"data": {b: self.suite.data_url(b) for b in self.suite.benchmark_names}}
        )
        manifests = {b: check_data_readable(url, b, self.source) for b, url in self.suite.data.items()}
        for entry in self.suite.entries:
            train = self.suite.train_spec_of(entry, self.suite.seeds_of(entry)[0])
            url = self.suite.data[entry.benchmark]
            check_eval_gallery(manifests[entry.benchmark], url, train.eval_split, train.allow_missing, self.source)
        self.say(f"Ray: {connect(self.address, log_to_driver=self.verbose)}")
        if self.mode == TRAIN:
            self._check_resources()
        run_name = f"regression-{self.suite.name}-{self.stamp}"
        parent_id = tracking.start_run(
            tracker, self.experiment, self.run_key, run_name, self.suite, self.suite_path, self.mode, manifests
        )
        try:
            with Heartbeat(tracker, parent_id):
                if self.mode == TRAIN:
                    results = self._train(tracker, uri, parent_id, champions)
                else:
                    results = self._evaluate_champions(tracker, uri, parent_id, champions)
                before = tracker.run(parent_id).start_ms
                history = earlier_runs(tracker, self.experiment, self.mode, before)
                for result in results:
                    result.previous = previous_baseline(history, result.key, self.suite.metric, result.fingerprint)
                    attach_paired_tests(tracker, result, self.suite.metric)
                    judge(result)
                wall = time.perf_counter() - started
                header = ReportHeader(
                    suite=self.suite.name,
                    mode=self.mode,
                    metric=self.suite.metric,
                    started=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(before / 1000)),
                    wall_seconds=wall,
                    run_id=parent_id,
                    experiment=self.experiment,
                    tracking_uri=uri,
                    git_commit=git_commit(),
                    suite_file=self.source,
                )
                self.say(f"writing the report to {self.out}")
                paths = write_report(self.out, header, results)
                failed = all_failed(self.suite.name, results)
                tracking.finish_run(tracker, parent_id, self.suite.metric, results, paths, wall, failed)
        except BaseException as err:
            reason = "interrupted (SIGINT/SIGTERM)" if isinstance(err, KeyboardInterrupt) else one_line(err)
            tracker.end_run(parent_id, RunState.FAILED, error=reason)
            with suppress(Exception):  # else `vtrlab reconcile` closes them: their parent has ended
                close_children(tracker, parent_id, f"the regression stopped: {reason}")
            raise
        if failed:
            raise RunsFailedError(failed)
        return RegressionOutcome(
            self.suite.name,
            self.mode,
            self.suite.metric,
            self.experiment,
            parent_id,
            self.out,
            paths,
            results,
            time.perf_counter() - started,
        )

    def _check_resources(self) -> None:
        budget = self.suite.budget
        for index, entry in enumerate(self.suite.entries):
            train = self.suite.train_spec_of(entry, self.suite.seeds_of(entry)[0])
            shape = trial_shape(train, budget.cpus_per_trial, budget.driver_resource)
            check_cluster_fits(shape, self.source, budget.trial_keys(f"train / entries.{index}.train"))

    def _train(self, tracker: Tracker, uri: str, parent_id: str, champions: dict) -> list[EntryResult]:
        from vtrlab.regress.trials import SeedTrials, train_all

        suite = self.suite
        root = (
            str(self.work_dir)
            if not suite.storage
            else f"{suite.storage.rstrip('/')}/regressions/{suite.name}/{self.work_dir.name}"
        )
        factory = SeedTrials(
            suite=suite.model_dump(mode="json"),
            run_key=self.run_key,
            parent_run_id=parent_id,
            experiment=self.experiment,
        )
        tracking.log_fingerprints(tracker, parent_id, {e.key: suite.entry_fingerprint(e) for e in suite.entries})
        trials = sum(len(suite.seeds_of(entry)) for entry in suite.entries)
        self.say(
            f"training {len(suite.entries)} entries over their seeds: {trials} Ray Train runs "
            f"(one Ray Tune grid, {suite.budget.max_concurrent} at a time)"
        )
        outcomes = train_all(suite, factory, root, uri, self.verbose, self.say)
        results = []
        for index, entry in enumerate(suite.entries):
            seeds = suite.seeds_of(entry)
            ran = [outcomes.get((index, seed)) for seed in seeds]
            finished = [o if o is not None and o.state == RunState.FINISHED else None for o in ran]
            result = EntryResult(
                key=entry.key,
                benchmark=entry.benchmark,
                method=entry.method,
                fingerprint=suite.entry_fingerprint(entry),
                seeds=list(seeds),
                values=[o.metrics.get(suite.metric) if o is not None else None for o in finished],
                run_ids=[o.run_id if o is not None else None for o in ran],
            )
            failures = [o.error for o in ran if o is not None and o.error]
            if failures:
                result.extra["error"] = "; ".join(failures)
            result.allowed_drop = suite.tolerance_of(entry).allowed_drop(result.std)
            result.champion = champion_baseline(champions[entry.benchmark], suite.metric, entry.method)
            results.append(result)
        if not suite.storage and not any(r.failed for r in results):
            shutil.rmtree(Path(root) / "train", ignore_errors=True)  # every adapter is in MLflow
        return results

    def _evaluate_champions(self, tracker: Tracker, uri: str, parent_id: str, champions: dict) -> list[EntryResult]:
        from vtrlab.regress.champions import eval_plan, evaluate_all

        suite = self.suite
        plans = [eval_plan(suite, benchmark, version, uri) for benchmark, version in champions.items()]
        fingerprints = {  # the same champion version with the same backbone weights: comparable across runs
            f"{b}.champion": hashlib.sha256(f"{v.model}/{v.version}/{suite.weights}".encode()).hexdigest()[:12]
            for b, v in champions.items()
        }
        tracking.log_fingerprints(tracker, parent_id, fingerprints)
        self.say(f"evaluating {len(plans)} champion(s) as Ray tasks: {', '.join(p.reference for p in plans)}")
        metrics = evaluate_all(suite, plans, uri)
        results = []
        for plan in plans:
            version, measured = champions[plan.benchmark], metrics[plan.benchmark]
            key = f"{plan.benchmark}.champion"
            child_id = tracking.log_evaluation(
                tracker, self.experiment, f"{self.run_key}/{key}", key, parent_id, suite, plan, version, measured
            )
            result = EntryResult(
                key=key,
                benchmark=plan.benchmark,
                method=version.tags.get("method", "?"),
                fingerprint=fingerprints[key],
                seeds=["eval"],
                values=[None if "error" in measured else measured.get(suite.metric)],
                run_ids=[child_id],
                extra={"reference": plan.reference, **({"error": measured["error"]} if "error" in measured else {})},
            )
            result.allowed_drop = suite.tolerance.allowed_drop(0.0)
            result.champion = champion_baseline(version, suite.metric, None)
            results.append(result)
        return results
