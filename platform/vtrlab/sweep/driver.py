"""`vtrlab sweep`: Ray Tune (Optuna search, ASHA early stopping) over methods x benchmarks, in MLflow.

One Tune experiment per (benchmark, method) pair: trials of a method compete under ASHA on the same
benchmark, and every method gets its own budget; each trial is one tracked Ray Train run
(`vtrlab.tuning.runner`). MLflow: an experiment per spec, a parent run per sweep (provenance, the spec file,
a heartbeat), a child run per trial; the best finished trial of each benchmark is registered as soon as
that benchmark's pairs are done.

The sweep's own state (the ledger) lives under `storage` when the spec names one (s3://..., shared by the
whole cluster and surviving the head), else under $VTRLAB_HOME/sweeps/<name>:

    latest.json                          {"run": STAMP}: the sweep `--resume` continues
    STAMP/state.json                     sweep key, spec (to refuse a changed spec on resume), parent run
    STAMP/<benchmark>__<method>/         Tune's experiment (tune/), Ray Train checkpoints (train/),
                                         asha.json (rungs), done.json (every trial's outcome)
    STAMP/registrations/<benchmark>.json what was registered (a resume registers nothing twice)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vtrlab.config import TrainSpec
from vtrlab.data.card import benchmark_label
from vtrlab.errors import ConfigError, RunsFailedError
from vtrlab.paths import vtrlab_home
from vtrlab.storage import join_url
from vtrlab.sweep.spec import SweepSpec, changed_keys, load_sweep_spec, trial_spec
from vtrlab.tracking.client import Tracker
from vtrlab.tracking.lifecycle import Heartbeat, close_children
from vtrlab.tracking.provenance import git_commit, provenance_params
from vtrlab.tracking.records import TAG_KIND, RunState
from vtrlab.tracking.registry import Registration
from vtrlab.tracking.store import check_tracking_server, tracking_uri
from vtrlab.train.preflight import (
    DRIVER_SHARE,
    check_cluster_fits,
    check_data_readable,
    check_eval_gallery,
    trial_shape,
)
from vtrlab.train.tracked import RunIdentity, run_tags
from vtrlab.tuning.ledger import Ledger
from vtrlab.tuning.runner import AshaSettings, TrialOutcome, TuneJob, failure_summary, run_job

LATEST = "latest.json"
STATE = "state.json"
DONE = "done.json"


@dataclass
class SweepOutcome:
    name: str
    parent_run_id: str
    experiment: str
    trials: list[TrialOutcome]
    registrations: list[Registration]
    wall_seconds: float  # the driver time of every run of the sweep (a resume adds its own)
    notes: list[str] = field(default_factory=list)  # e.g. why a benchmark registered nothing

    @property
    def failed(self) -> list[TrialOutcome]:
        return [t for t in self.trials if t.state == RunState.FAILED]


@dataclass(frozen=True)
class SweepTrials:
    """The trial factory of one (benchmark, method) pair (what its Tune function receives)."""

    sweep: dict[str, Any]  # the SweepSpec, as JSON
    benchmark: str
    method: str
    sweep_key: str
    parent_run_id: str
    experiment: str

    @property
    def group(self) -> str:
        return f"{self.sweep_key}/{self.benchmark}/{self.method}"

    def spec(self, config: dict[str, Any]) -> TrainSpec:
        return trial_spec(SweepSpec.model_validate(self.sweep), self.benchmark, self.method, config)

    def identity(self, config: dict[str, Any], trial_id: str) -> RunIdentity:
        spec = self.spec(config)
        return RunIdentity(
            experiment=self.experiment,
            key=f"{self.group}/{trial_id}",
            name=f"{self.method}-{self.benchmark}-{trial_id}",
            tags=run_tags(spec, "trial", sweep=self.sweep["name"]),
            parent_run_id=self.parent_run_id,
        )


def check_resources(spec: SweepSpec, source: str) -> None:
    """Refuse a budget whose single trial cannot fit the cluster even at full scale, naming the keys to
    change; ask an autoscaling cluster for the first trial's resources."""
    for benchmark in spec.benchmark_names:
        for method, plan in spec.methods.items():
            _, fields = spec.layered(benchmark, method, plan.knobs, plan.train)
            train = TrainSpec.model_validate({"benchmark": benchmark, "method": method, "data": "-", **fields})
            shape = trial_shape(train, spec.budget.cpus_per_trial, spec.budget.driver_resource)
            check_cluster_fits(shape, source, spec.budget.trial_keys("train"))


class SweepRunner:
    """Runs (or resumes) the sweep of one spec file."""

    def __init__(
        self,
        spec_path: str | Path,
        address: str | None = None,
        resume: bool = False,
        overrides: dict[str, Any] | None = None,
        verbose: bool = False,
        strict: bool = False,
        say=print,
    ):
        self.spec_path = Path(spec_path)
        self.source = str(self.spec_path)
        self.spec = load_sweep_spec(self.spec_path)
        if overrides:  # e.g. the quickstart's pretrained backbone weights
            self.spec = SweepSpec.model_validate({**self.spec.model_dump(by_alias=True), **overrides})
        self.address, self.resume, self.verbose, self.strict, self.say = address, resume, verbose, strict, say
        self.experiment = f"sweep-{self.spec.name}"
        base = self.spec.storage.rstrip("/") + "/sweeps" if self.spec.storage else str(vtrlab_home() / "sweeps")
        self.ledger = Ledger(join_url(base, self.spec.name))

    # ---- state -------------------------------------------------------------------------------------
    def _latest(self) -> Ledger | None:
        latest = self.ledger.get(LATEST)
        return self.ledger.child(latest["run"]) if latest else None

    def finished(self) -> bool:
        """Whether this spec's latest sweep ran to the end with this very spec: every pair done and, if the
        spec registers, every benchmark's registration recorded."""
        run = self._latest()
        if run is None:
            return False
        state = run.get(STATE) or {}
        if state.get("fingerprint") != self.spec.fingerprint():
            return False
        pairs = all(run.child(self._pair(b, m)).get(DONE) for b in self.spec.benchmark_names for m in self.spec.methods)
        registered = not self.spec.register_best or all(
            run.get(f"registrations/{b}.json") for b in self.spec.benchmark_names
        )
        return pairs and registered

    @staticmethod
    def _pair(benchmark: str, method: str) -> str:
        return f"{benchmark_label(benchmark)}__{method}"

    def _resumed(self) -> tuple[Ledger, dict[str, Any]]:
        """(ledger, state) of the sweep `--resume` continues; a ConfigError when there is none or the spec
        changed since (checked before anything starts)."""
        run = self._latest()
        state = run.get(STATE) if run else None
        if run is None or not state:
            raise ConfigError(f"{self.source}: nothing to resume (no sweep state at {self.ledger.url})")
        if state.get("fingerprint") != self.spec.fingerprint():
            changed = changed_keys(state.get("spec", {}), self.spec.model_dump(mode="json", by_alias=True))
            raise ConfigError(
                f"{self.source}: the spec changed since the interrupted sweep ({', '.join(changed[:12])}); "
                "resuming would mix two experiments: undo the change, or run without --resume to start a "
                f"new sweep (the interrupted one is kept at {run.url})"
            )
        return run, state

    def _open_state(self) -> tuple[Ledger, dict[str, Any]]:
        """(this sweep's ledger, its state): the latest one on resume, checked against the spec; else new."""
        if self.resume:
            return self._resumed()
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + f"-{time.time_ns() % 1000000:06d}"
        run = self.ledger.child(stamp)
        state = {
            "sweep_key": f"{self.spec.name}/{self.spec.fingerprint()}/{stamp}",
            "fingerprint": self.spec.fingerprint(),
            "spec": self.spec.model_dump(mode="json", by_alias=True),
            "created": stamp,
        }
        run.put(STATE, state)
        self.ledger.put(LATEST, {"run": stamp})
        return run, state

    # ---- the sweep ---------------------------------------------------------------------------------
    def preflight(self) -> tuple[str, dict[str, dict]]:
        """Everything checked before anything is written: the tracking server, every benchmark's data."""
        uri = tracking_uri()
        check_tracking_server(uri)
        manifests = {}
        for benchmark in self.spec.benchmark_names:
            trains = [trial_spec(self.spec, benchmark, method, {}) for method in self.spec.methods]
            splits = {split for train in trains for split in (train.train_split, train.eval_split) if split}
            url = self.spec.data_url(benchmark)
            manifests[benchmark] = check_data_readable(url, benchmark, self.source, sorted(splits))
            for split, allow in {(train.eval_split, train.allow_missing) for train in trains}:
                check_eval_gallery(manifests[benchmark], url, split, allow, self.source)
        return uri, manifests

    def run(self) -> SweepOutcome:
        from vtrlab.cluster import connect

        started = time.perf_counter()
        if self.resume:
            self._resumed()  # refused before the data is read: nothing to resume, or a changed spec
        uri, manifests = self.preflight()
        self.say(f"Ray: {connect(self.address, log_to_driver=self.verbose)}")
        check_resources(self.spec, self.source)
        run_ledger, state = self._open_state()  # only now: a refused sweep leaves no state behind
        tracker = Tracker(uri)
        parent, _ = tracker.find_or_create_run(
            self.experiment,
            key=state["sweep_key"],
            name=f"sweep-{self.spec.name}",
            tags={TAG_KIND: "sweep", "sweep": self.spec.name, "git_commit": git_commit()},
        )
        if "parent_run_id" not in state:
            run_ledger.put(STATE, {**state, "parent_run_id": parent.run_id})
        tracker.log_params(parent.run_id, provenance_params(self.source, self.spec.fingerprint(), manifests))
        tracker.log_text(parent.run_id, self.spec_path.read_text(), f"spec/{self.spec_path.name}")
        # `sweep_wall_seconds` sums the driver time of every run of this sweep (a resume adds its own)
        earlier_wall = tracker.run(parent.run_id).metrics.get("sweep_wall_seconds", 0.0)

        def sweep_wall() -> float:
            return earlier_wall + time.perf_counter() - started

        trials: list[TrialOutcome] = []
        registrations: list[Registration] = []
        notes: list[str] = []
        try:
            with Heartbeat(tracker, parent.run_id):
                for benchmark in self.spec.benchmark_names:
                    for method in self.spec.methods:
                        trials += self._run_pair(run_ledger, state, uri, parent.run_id, benchmark, method)
                    if self.spec.register_best:
                        registration, note = self._register(tracker, run_ledger, benchmark, trials)
                        registrations += [registration] if registration else []
                        notes += [note] if note else []
        except BaseException as err:
            from vtrlab.train.tracked import one_line

            reason = "interrupted (SIGINT/SIGTERM)" if isinstance(err, KeyboardInterrupt) else one_line(err)
            with suppress(Exception):
                tracker.log_metrics(parent.run_id, {"sweep_wall_seconds": sweep_wall()})
            tracker.end_run(parent.run_id, RunState.FAILED, error=f"{reason}; `vtrlab sweep --resume` continues it")
            with suppress(Exception):  # else `vtrlab reconcile` closes them: their parent has ended
                close_children(tracker, parent.run_id, f"the sweep stopped: {reason}; `--resume` continues it")
            raise
        # the whole sweep's time: a rerun that only re-reads finished trials does not print them as taking seconds
        wall = sweep_wall()
        outcome = SweepOutcome(self.spec.name, parent.run_id, self.experiment, trials, registrations, wall, notes)
        tracker.log_metrics(parent.run_id, {"sweep_wall_seconds": wall, "failed_trials": len(outcome.failed)})
        summary = failure_summary(trials)
        if summary and (self.strict or len(outcome.failed) == len(trials)):
            tracker.end_run(parent.run_id, RunState.FAILED, error=summary)
            raise RunsFailedError(f"sweep {self.spec.name}: {summary}")
        if summary:
            outcome.notes.append(f"warning: {summary}")
        tracker.end_run(parent.run_id, RunState.FINISHED)
        return outcome

    def _run_pair(
        self, run_ledger: Ledger, state: dict, uri: str, parent_id: str, benchmark: str, method: str
    ) -> list[TrialOutcome]:
        from vtrlab.sweep.space import searcher

        pair = run_ledger.child(self._pair(benchmark, method))
        done = pair.get(DONE)
        if done is not None:
            return [TrialOutcome.from_dict(t) for t in done["trials"]]
        plan = self.spec.methods[method]
        objective = self.spec.objective
        epochs = self.spec.epochs_of(benchmark, method)
        factory = SweepTrials(
            sweep=self.spec.model_dump(mode="json", by_alias=True),
            benchmark=benchmark,
            method=method,
            sweep_key=state["sweep_key"],
            parent_run_id=parent_id,
            experiment=self.experiment,
        )
        job = TuneJob(
            label=f"{benchmark_label(benchmark)} / {method}",
            root=pair.url,
            ledger=pair,
            factory=factory,
            tracking_uri=uri,
            num_samples=self.spec.budget.trials if plan.search else 1,
            max_concurrent=self.spec.budget.max_concurrent,
            cpus_per_trial=self.spec.budget.cpus_per_trial,
            trial_retries=self.spec.budget.trial_retries,
            epochs=epochs,
            resources={self.spec.budget.driver_resource: DRIVER_SHARE} if self.spec.budget.driver_resource else {},
            search_alg=searcher(plan, objective) if plan.search else None,
            asha=AshaSettings(
                objective.metric, objective.mode, self.spec.budget.grace_period, self.spec.budget.reduction_factor
            )
            if epochs > 1
            else None,
            verbose=self.verbose,
            say=self.say,
        )
        outcomes = run_job(job)
        pair.put(DONE, {"trials": [o.to_dict() for o in outcomes]})
        return outcomes

    def _register(
        self, tracker: Tracker, run_ledger: Ledger, benchmark: str, trials: list[TrialOutcome]
    ) -> tuple[Registration | None, str | None]:
        """Register the best finished trial of `benchmark` (once: the ledger records it as it happens)."""
        key = f"registrations/{benchmark}.json"
        recorded = run_ledger.get(key)
        if recorded is not None:
            registration = recorded.get("registration")
            return (Registration(**registration) if registration else None), recorded.get("note")
        registration, note = self._register_best(tracker, benchmark, trials)
        run_ledger.put(key, {"registration": registration.__dict__ if registration else None, "note": note})
        return registration, note

    def _register_best(
        self, tracker: Tracker, benchmark: str, trials: list[TrialOutcome]
    ) -> tuple[Registration | None, str | None]:
        from vtrlab.tracking.registry import registered_model_name

        if self.spec.weights is None:
            return None, (
                f"{benchmark}: not registered: the backbone has random weights (weights: null), which no one "
                "could rebuild to use the adapter; give a pretrained tag or a weights file"
            )
        objective = self.spec.objective
        tags = {"sweep": self.spec.name, "benchmark": benchmark, "backbone": self.spec.backbone}
        candidates = [t for t in trials if t.benchmark == benchmark]
        model = registered_model_name(benchmark, self.spec.backbone)
        registration = register_best(tracker, model, candidates, objective.metric, objective.mode, tags, self.say)
        if registration is None:
            return None, f"{benchmark}: not registered: no finished trial with an intact adapter and {objective.metric}"
        return registration, None


def register_best(
    tracker: Tracker,
    model: str,
    trials: list[TrialOutcome],
    metric: str,
    mode: str,
    tags: dict[str, str],
    say: Callable[[str], None] = print,
) -> Registration | None:
    """Register the best FINISHED trial of `trials` on `metric` as a version of `model`. A trial whose adapter
    upload broke off is completed from its checkpoint first (`complete_adapter`); one that cannot be (no
    checkpoint left, a broken one) is skipped with a warning naming its run, for the next best."""
    from vtrlab.errors import ArtifactError, StorageError
    from vtrlab.tracking.registry import register_adapter
    from vtrlab.tuning.runner import complete_adapter

    sign = 1 if mode == "max" else -1
    candidates = [t for t in trials if t.state == RunState.FINISHED and metric in t.metrics]
    for best in sorted(candidates, key=lambda t: -sign * t.metrics[metric]):
        try:
            complete_adapter(tracker, best.run_id)
            return register_adapter(
                tracker, model, best.run_id, best.metrics, metric, mode, tags={**tags, "method": best.method}
            )
        except (ArtifactError, StorageError) as err:
            say(f"warning: run {best.run_id} (trial {best.trial_id}) not registered, trying the next best: {err}")
    return None
