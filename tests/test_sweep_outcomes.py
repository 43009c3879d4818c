"""Run outcomes without a cluster: a trial that meets vtrlab's own bad-input error ends at once (no retry)
and counts as FAILED with that error; a regression whose every run failed says so and why."""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest

from vtrlab.config import TrainSpec
from vtrlab.errors import ArtifactError, ConfigError, DataError, StorageError
from vtrlab.regress.baselines import EntryResult
from vtrlab.regress.runner import all_failed
from vtrlab.tracking.client import Tracker
from vtrlab.tracking.records import RunState
from vtrlab.train.tracked import RunIdentity
from vtrlab.tuning import runner


@dataclass(frozen=True)
class Factory:
    group: str = "outcomes/synthetic/bottleneck"

    def spec(self, config: dict[str, Any]) -> TrainSpec:
        return TrainSpec(benchmark="synthetic", method="bottleneck", data="-", epochs=2)

    def identity(self, config: dict[str, Any], trial_id: str) -> RunIdentity:
        return RunIdentity("sweep-outcomes", key=f"{self.group}/{trial_id}", name=trial_id)


@pytest.fixture
def in_a_trial(monkeypatch):
    """`tune_trial` as Tune calls it, with `run_tracked` raising what the test gives."""
    import ray.tune

    monkeypatch.setattr(ray.tune, "get_context", lambda: SimpleNamespace(get_trial_id=lambda: "t1"))

    def call(error: BaseException) -> None:
        def run_tracked(*args, **kwargs):
            raise error

        monkeypatch.setattr(runner, "run_tracked", run_tracked)
        runner.tune_trial({}, Factory(), "sqlite:///unused.db", "/unused")

    return call


@pytest.mark.parametrize("error", [DataError("shard 3 is corrupt"), ConfigError("knob width=0")], ids=str)
def test_a_bad_input_error_in_a_trial_ends_it_without_a_retry(in_a_trial, error):
    assert in_a_trial(error) is None  # returned: Tune sees no error, so it does not retry


@pytest.mark.parametrize(
    "error", [StorageError("s3 timed out"), ArtifactError("upload broke off"), RuntimeError("NCCL")], ids=str
)
def test_other_errors_in_a_trial_are_left_to_tunes_retries(in_a_trial, error):
    with pytest.raises(type(error)):
        in_a_trial(error)


def test_a_trial_ended_by_a_bad_input_error_is_accounted_failed_with_it(tmp_path):
    tracker = Tracker(f"sqlite:///{tmp_path}/mlflow.db")
    factory = Factory()
    identity = runner.identity_of(factory, {}, "t1")
    run, _ = tracker.find_or_create_run(identity.experiment, identity.key, identity.name, identity.tags)
    tracker.end_run(run.run_id, RunState.FAILED, error="DataError: shard 3 is corrupt")
    result = SimpleNamespace(path=str(tmp_path / "t1"), config={}, error=None, metrics={})

    class Results(list):  # Tune's ResultGrid: its results, and the trials' statuses
        _experiment_analysis = SimpleNamespace(trials=[SimpleNamespace(trial_id="t1", status="TERMINATED")])

    outcomes, unfinished = runner._account(SimpleNamespace(factory=factory), tracker, Results([result]), None)
    assert not unfinished
    (outcome,) = outcomes
    assert outcome.state == RunState.FAILED and outcome.error == "DataError: shard 3 is corrupt"
    assert runner.failure_summary(outcomes) == "1 of 1 trials failed: DataError: shard 3 is corrupt (1 trial)"


@pytest.mark.parametrize("tune_status", ["TERMINATED", "ERROR"])
def test_a_trial_asha_stopped_whose_run_died_with_its_placement_group_counts_as_stopped(tmp_path, tune_status):
    """Stopping a trial removes its placement group, which can kill its Ray Train controller before the trial
    function ends: the run then ended FAILED (ActorDiedError), but ASHA stopped it, and that is what it is."""
    tracker = Tracker(f"sqlite:///{tmp_path}/mlflow.db")
    factory = Factory()
    identity = runner.identity_of(factory, {}, "t1")
    run, _ = tracker.find_or_create_run(identity.experiment, identity.key, identity.name, identity.tags)
    tracker.log_epoch(run.run_id, 0, {"rsum": 10.0})
    tracker.end_run(run.run_id, RunState.FAILED, error="ActorDiedError: placement group removed")
    error = RuntimeError("ActorDiedError") if tune_status == "ERROR" else None
    result = SimpleNamespace(path=str(tmp_path / "t1"), config={}, error=error, metrics={})
    scheduler = SimpleNamespace(stopped={"t1": 1}, rung_of=lambda epochs: 1)

    class Results(list):
        _experiment_analysis = SimpleNamespace(trials=[SimpleNamespace(trial_id="t1", status=tune_status)])

    outcomes, _ = runner._account(SimpleNamespace(factory=factory), tracker, Results([result]), scheduler)
    (outcome,) = outcomes
    assert outcome.state == RunState.KILLED and outcome.stopped == "after epoch 1 (rung 1)"
    record = tracker.run(run.run_id)
    assert record.status == RunState.KILLED and "error" not in record.tags
    assert record.tags["asha_stopped"] == "after epoch 1 (rung 1)"


def entry(key: str, error: str | None) -> EntryResult:
    values: list[float | None] = [None, None] if error else [40.0, None]
    result = EntryResult(key, "synthetic", "bottleneck", "f", [0, 1], values, ["r0", "r1"])
    if error:
        result.extra["error"] = error
    return result


def test_a_regression_whose_every_run_failed_names_the_first_error_of_each_kind():
    failed = all_failed(
        "nightly",
        [entry("a", "DataError: shard 3"), entry("b", "DataError: shard 4"), entry("c", "ConfigError: width")],
    )
    assert failed == (
        "regression nightly: every run of 3 entries failed: a: DataError: shard 3 (2 entries); "
        "c: ConfigError: width (1 entry)"
    )
    assert all_failed("nightly", [entry("a", "DataError: shard 3"), entry("b", None)]) is None


def worker_group_error(*errors: BaseException):
    """What Ray Train raises when its workers fail: each worker's error wrapped with its traceback."""
    from ray.train.v2._internal.exceptions import UserExceptionWithTraceback
    from ray.train.v2.api.exceptions import WorkerGroupError

    failures = {rank: UserExceptionWithTraceback(err, f"Traceback ...\n{err!r}") for rank, err in enumerate(errors)}
    return WorkerGroupError("training failed", failures)


def test_a_workers_bad_input_error_is_not_restarted_and_comes_back_as_itself():
    from ray.train import FailureConfig
    from ray.train.v2._internal.execution.failure_handling import FailureDecision

    from vtrlab.train.runner import UserErrorsAreFinal
    from vtrlab.train.tracked import one_line, user_error

    corrupt = DataError("s3://data/synthetic/train-00003.tar: not a tar archive")
    failed = worker_group_error(corrupt, corrupt)
    assert UserErrorsAreFinal(FailureConfig(max_failures=2)).make_decision(failed) == FailureDecision.RAISE
    assert user_error(failed) is corrupt
    assert one_line(failed) == "DataError: s3://data/synthetic/train-00003.tar: not a tar archive"
    transient = worker_group_error(RuntimeError("NCCL timeout"))
    assert UserErrorsAreFinal(FailureConfig(max_failures=2)).make_decision(transient) == FailureDecision.RETRY
    assert user_error(transient) is None and user_error(worker_group_error(StorageError("s3 503"))) is None


def test_progress_counts_every_trial_of_a_grid():
    """A regression's grid (entries x seeds) is one Tune sample per grid point: "[2/2]", never "[2/1]"."""
    from ray import tune

    grid = SimpleNamespace(num_samples=1, param_space={"run": tune.grid_search(["e/seed0", "e/seed1"])})
    assert runner.trial_count(grid) == 2
    assert runner.trial_count(SimpleNamespace(num_samples=3, param_space=None)) == 3
