"""The one Tune runner: a Ray Tune experiment of tracked training runs, searched (sweeps: Optuna + ASHA)
or a fixed grid (regressions: every entry x seed), and the honest end state of every trial.

Each trial is a Tune function (`tune_trial`) that builds its TrainSpec and run identity from a
`TrialFactory` and calls `vtrlab.train.tracked.run_tracked`. Afterwards every trial is accounted for once,
from what its MLflow run logged (not from Tune's iteration counter, which restarts on a resume):

- FINISHED: it logged every epoch (a trial that did, but whose driver died before closing the run, is
  closed here, its adapter uploaded from the last checkpoint);
- KILLED: ASHA stopped it; tagged `asha_stopped: after epoch N (rung R)`;
- FAILED: it raised on every attempt (`trial_retries` + 1; once for vtrlab's own bad-input errors, which
  no retry fixes), tagged with the error; a trial that never got a run gets one, so nothing goes missing;
  runs left RUNNING by trials Tune never recorded (created after its last snapshot, before the driver
  died) are closed FAILED as lost.

SIGINT and SIGTERM stop the experiment gracefully (Tune saves its state); the interrupted trials' runs end
FAILED ("interrupted") and `Interrupted` is raised; a resume sets them RUNNING again and continues them.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from vtrlab.config import TrainSpec
from vtrlab.errors import ArtifactError, Interrupted, VtrlabError
from vtrlab.storage import checkpoint_directory
from vtrlab.tracking.client import Tracker
from vtrlab.tracking.records import TAG_ERROR, TAG_STOPPED, RunState
from vtrlab.train.tracked import (
    TAG_CHECKPOINTS,
    RunIdentity,
    adapter_intact,
    ensure_adapter_logged,
    one_line,
    run_tracked,
    start_run,
    user_error,
)
from vtrlab.tuning.ledger import Ledger

TAG_GROUP = "vtrlab.group"  # every run of one Tune experiment (a sweep's pair, a regression) carries it
TAG_TRIAL = "trial_id"
TUNE_NAME = "tune"
STATE_SECONDS = "2"  # Tune's experiment snapshots: often, so a killed driver loses little


class TrialFactory(Protocol):
    """What a Tune function needs to turn its config into a run (picklable: Tune ships it to the trial)."""

    group: str  # the `vtrlab.group` tag of every run of the experiment

    def spec(self, config: dict[str, Any]) -> TrainSpec: ...

    def identity(self, config: dict[str, Any], trial_id: str) -> RunIdentity: ...


@dataclass(frozen=True)
class AshaSettings:
    metric: str
    mode: str
    grace_period: int
    reduction_factor: float


@dataclass
class TuneJob:
    """One Tune experiment: where it lives, what it runs and how."""

    label: str  # for progress lines, e.g. "synthetic / mv-adapter"
    root: str  # its folder or URL: Tune's experiment under `tune/`, Train checkpoints under `train/`
    ledger: Ledger
    factory: TrialFactory
    tracking_uri: str
    num_samples: int
    max_concurrent: int
    cpus_per_trial: float
    trial_retries: int
    epochs: int  # what ASHA measures trials against
    search_alg: Any = None
    param_space: dict[str, Any] | None = None
    asha: AshaSettings | None = None
    resources: dict[str, float] = field(default_factory=dict)
    verbose: bool = False
    say: Callable[[str], None] = print


@dataclass
class TrialOutcome:
    """How one trial ended, as its run says."""

    trial_id: str
    run_id: str
    state: RunState
    epochs: int
    expected_epochs: int
    metrics: dict[str, float]
    config: dict[str, Any]
    error: str | None = None
    stopped: str | None = None  # "after epoch N (rung R)" for ASHA-stopped trials
    checkpoint: str | None = None

    benchmark: str = ""
    method: str = ""

    @property
    def stopped_early(self) -> bool:
        return self.state == RunState.KILLED

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "state": self.state.value}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrialOutcome:
        return cls(**{**data, "state": RunState(data["state"])})


def tune_trial(config: dict[str, Any], factory: TrialFactory, tracking_uri: str, storage_path: str) -> None:
    """The Tune function of every trial: its spec and identity from the factory, then the tracked run."""
    import ray.tune

    started_at = time.time()
    trial_id = ray.tune.get_context().get_trial_id()
    try:
        run_tracked(
            factory.spec(config),
            identity_of(factory, config, trial_id),
            tracking_uri=tracking_uri,
            storage_path=storage_path,
            trainer_name=f"train-{trial_id}",
            in_tune=True,
            started_at=started_at,
        )
    except VtrlabError as err:
        if user_error(err) is None or isinstance(err, ArtifactError):
            raise  # a StorageError, an adapter upload that broke off: worth Tune's retries
        # vtrlab's own bad-input error (a corrupt shard, a wrong knob): another attempt would fail alike, so
        # the trial ends here without retries; its run is FAILED with the error, which `_account` reads
        return


def identity_of(factory: TrialFactory, config: dict[str, Any], trial_id: str) -> RunIdentity:
    """The factory's run identity with the tags every trial run carries (its experiment group, trial id)."""
    identity = factory.identity(config, trial_id)
    tags = {**identity.tags, TAG_GROUP: factory.group, TAG_TRIAL: trial_id}
    return RunIdentity(identity.experiment, identity.key, identity.name, tags, identity.parent_run_id)


@contextmanager
def graceful_signals() -> Iterator[dict[str, str]]:
    """While Tune runs: SIGINT and SIGTERM ask Tune to stop gracefully (its SIGUSR1 path: state saved,
    trials stopped) and are recorded; a second signal interrupts at once."""
    caught: dict[str, str] = {}
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def handler(signum: int, frame) -> None:
        if caught:
            raise KeyboardInterrupt
        caught["signal"] = signal.Signals(signum).name
        os.kill(os.getpid(), signal.SIGUSR1)

    saved_env = os.environ.get("TUNE_DISABLE_SIGINT_HANDLER")
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
    for sig in previous:
        signal.signal(sig, handler)
    try:
        yield caught
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
        if saved_env is None:
            os.environ.pop("TUNE_DISABLE_SIGINT_HANDLER", None)
        else:
            os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = saved_env


def _join(root: str, *parts: str) -> str:
    from vtrlab.storage import join_url

    return join_url(root, *parts)


def _tuner(job: TuneJob, scheduler):
    from ray import tune

    from vtrlab.tuning.progress import TrialLines

    trainable = tune.with_resources(
        tune.with_parameters(
            tune_trial,
            factory=job.factory,
            tracking_uri=job.tracking_uri,
            storage_path=_join(job.root, "train"),
        ),
        {"cpu": job.cpus_per_trial, **job.resources},
    )
    from vtrlab.storage import pyarrow_filesystem

    filesystem, root = pyarrow_filesystem(job.root)  # s3:// with vtrlab's retry configuration
    experiment = _join(root, TUNE_NAME)
    if tune.Tuner.can_restore(experiment, storage_filesystem=filesystem):
        # Tune's experiment state is pickled: it is only ever read from the storage this spec names
        job.say(f"{job.label}: resuming Tune's experiment at {_join(job.root, TUNE_NAME)}")
        return tune.Tuner.restore(
            experiment, trainable, resume_unfinished=True, resume_errored=False, storage_filesystem=filesystem
        )
    return tune.Tuner(
        trainable,
        param_space=job.param_space,
        tune_config=tune.TuneConfig(
            search_alg=job.search_alg,
            scheduler=scheduler,
            num_samples=job.num_samples,
            max_concurrent_trials=job.max_concurrent,
            trial_dirname_creator=lambda trial: trial.trial_id,
        ),
        run_config=tune.RunConfig(
            name=TUNE_NAME,
            storage_path=root,
            storage_filesystem=filesystem,
            failure_config=tune.FailureConfig(max_failures=job.trial_retries),
            verbose=1 if job.verbose else 0,
            callbacks=[TrialLines(job.label, trial_count(job), job.epochs, job.say)],
        ),
    )


def trial_count(job: TuneJob) -> int:
    """How many trials the job runs: its samples times the size of its grid (a regression's seeds x entries)."""
    grid = 1
    for value in (job.param_space or {}).values():
        if isinstance(value, dict) and "grid_search" in value:
            grid *= len(value["grid_search"])
    return job.num_samples * grid


def run_job(job: TuneJob) -> list[TrialOutcome]:
    """Run (or resume) the Tune experiment and return every trial's outcome; `Interrupted` on SIGINT or
    SIGTERM, after the interrupted trials' runs are ended FAILED."""
    from vtrlab.tuning.scheduler import DurableASHA

    scheduler = None
    if job.asha is not None:
        scheduler = DurableASHA(
            job.ledger,
            job.asha.metric,
            job.asha.mode,
            job.epochs,
            job.asha.grace_period,
            job.asha.reduction_factor,
        )
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", STATE_SECONDS)
    if not job.verbose:  # Tune's new output engine prints its experiment banner even at verbose=0
        os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
    tuner = _tuner(job, scheduler)
    with graceful_signals() as caught:
        results = tuner.fit()
    tracker = Tracker(job.tracking_uri)
    outcomes, unfinished = _account(job, tracker, results, scheduler)
    _close_lost(job, tracker, {o.trial_id for o in outcomes} | set(unfinished))
    if caught or unfinished:
        why = caught.get("signal", "the experiment stopping early")
        for run_id in unfinished.values():
            if run_id:
                tracker.end_run(run_id, RunState.FAILED, error=f"interrupted by {why}; `--resume` continues it")
        raise Interrupted(f"{job.label}: interrupted by {why}; {len(unfinished)} trial(s) unfinished (state saved)")
    return outcomes


def _trials_by_id(results) -> dict[str, Any]:
    return {trial.trial_id: trial for trial in results._experiment_analysis.trials}


def _account(job: TuneJob, tracker: Tracker, results, scheduler) -> tuple[list[TrialOutcome], dict[str, str | None]]:
    """(outcome of every ended trial, {trial id: run id} of trials left unfinished)."""
    trials = _trials_by_id(results)
    outcomes: list[TrialOutcome] = []
    unfinished: dict[str, str | None] = {}
    for result in results:
        trial_id = Path(result.path).name
        trial = trials.get(trial_id)
        status = getattr(trial, "status", "ERROR" if result.error else "TERMINATED")
        config = dict(result.config or {})
        identity = identity_of(job.factory, config, trial_id)
        run = tracker.find_run(identity.key)
        if status not in ("TERMINATED", "ERROR"):
            unfinished[trial_id] = run.run_id if run else None
            continue
        spec = job.factory.spec(config)
        expected = 1 if spec.method == "zero-shot" else spec.epochs
        run_id = run.run_id if run else start_run(tracker, spec, identity)
        epochs = len(tracker.logged_epochs(run_id))
        metrics = {k: float(v) for k, v in (result.metrics or {}).items() if isinstance(v, int | float)}
        checkpoint = (result.metrics or {}).get("checkpoint_dir_name") or (result.metrics or {}).get("checkpoint_path")
        outcome = TrialOutcome(trial_id, run_id, RunState.FINISHED, epochs, expected, metrics, config)
        outcome.benchmark, outcome.method = spec.benchmark, spec.method
        outcome.checkpoint = str(checkpoint) if checkpoint else None
        record = tracker.run(run_id)
        # ASHA's decision comes first: stopping a trial removes its placement group, which can kill its Ray Train
        # controller while the trial function still runs, so its run may have ended FAILED (ActorDiedError)
        stopped_by_asha = scheduler is not None and trial_id in scheduler.stopped and epochs < expected
        if status == "ERROR" and not stopped_by_asha:
            outcome.state = RunState.FAILED
            outcome.error = one_line(result.error) if result.error else "the trial failed without an error"
            tracker.end_run(run_id, RunState.FAILED, error=outcome.error)
        elif record.status == RunState.FAILED and not stopped_by_asha:  # a bad-input error, not retried
            outcome.state = RunState.FAILED
            outcome.error = record.tags.get(TAG_ERROR) or "the trial failed without an error"
        elif epochs >= expected:
            _finish(tracker, run_id, job, trial_id)
        else:
            rung = scheduler.rung_of(epochs) if scheduler is not None else epochs
            outcome.state = RunState.KILLED
            outcome.stopped = f"after epoch {epochs} (rung {rung})"
            tracker.end_run(run_id, RunState.KILLED, tags={TAG_STOPPED: outcome.stopped})
        outcome.metrics = {**outcome.metrics, **tracker.run(run_id).metrics}
        outcomes.append(outcome)
    return outcomes, unfinished


def _finish(tracker: Tracker, run_id: str, job: TuneJob, trial_id: str) -> None:
    """A trial that trained every epoch: make sure its run is FINISHED with an intact adapter (its Tune
    function may have been stopped between its last report and closing the run)."""
    if tracker.run(run_id).status == RunState.FINISHED:
        return
    with latest_checkpoint(_join(job.root, "train", f"train-{trial_id}")) as directory:
        ensure_adapter_logged(tracker, run_id, directory)
    tracker.end_run(run_id, RunState.FINISHED)


def complete_adapter(tracker: Tracker, run_id: str) -> None:
    """Make run `run_id`'s `adapter/` intact before it counts: an upload that broke off (a half-uploaded
    adapter) is done again from the newest checkpoint of the run's Ray Train run (its `vtrlab.checkpoints`
    tag, a folder or s3:// URL the driver reads like the workers); ArtifactError when there is none."""
    if adapter_intact(tracker, run_id):
        return
    location = tracker.run(run_id).tags.get(TAG_CHECKPOINTS)
    if not location:
        raise ArtifactError(f"run {run_id}: its adapter is missing or broken and the run names no checkpoints")
    with latest_checkpoint(location) as directory:
        if directory is None:
            raise ArtifactError(f"run {run_id}: its adapter is missing or broken and {location} holds no checkpoint")
        ensure_adapter_logged(tracker, run_id, directory)


def _close_lost(job: TuneJob, tracker: Tracker, known: set[str]) -> None:
    """End FAILED the RUNNING runs of this experiment whose trial Tune does not know (created after its last
    snapshot by a driver that then died: they will not continue)."""
    for run in tracker.runs_tagged({TAG_GROUP: job.factory.group}):
        if run.status == RunState.RUNNING and run.tags.get(TAG_TRIAL) not in known:
            tracker.end_run(
                run.run_id,
                RunState.FAILED,
                error="lost: its driver stopped before Ray Tune recorded the trial; a new trial replaced it",
            )


@contextmanager
def latest_checkpoint(train_run: str) -> Iterator[str | None]:
    """A local directory holding the newest checkpoint of the Ray Train run stored at `train_run` (a folder
    or an s3:// URL), or None when it has none."""
    import pyarrow.fs
    from ray.train import Checkpoint

    from vtrlab.storage import pyarrow_filesystem

    try:
        filesystem, path = pyarrow_filesystem(train_run)
        entries = filesystem.get_file_info(pyarrow.fs.FileSelector(path, allow_not_found=True))
    except (OSError, ValueError):
        entries = []
    names = sorted(
        e.path
        for e in entries
        if e.type == pyarrow.fs.FileType.Directory and Path(e.path).name.startswith("checkpoint_")
    )
    if not names:
        yield None
        return
    with checkpoint_directory(Checkpoint(names[-1], filesystem=filesystem)) as directory:
        yield directory


def failure_summary(outcomes: list[TrialOutcome]) -> str:
    """ "N of M trials failed: <first error of each kind> (k trials); ..." (empty when none failed)."""
    failed = [o for o in outcomes if o.state == RunState.FAILED]
    if not failed:
        return ""
    kinds: dict[str, list[TrialOutcome]] = {}
    for outcome in failed:
        kind = (outcome.error or "unknown error").split(":", 1)[0]
        kinds.setdefault(kind, []).append(outcome)
    parts = [f"{group[0].error} ({len(group)} trial{'s' * (len(group) != 1)})" for group in kinds.values()]
    return f"{len(failed)} of {len(outcomes)} trials failed: " + "; ".join(parts)
