"""Every run accounted for exactly once, in the state it really ended in, whatever fails: a driver killed
outright and resumed, a tracking server that blinks for 30 s, a trial that raises, registrations that race,
an adapter upload that broke off, a resumed spec that changed, runs a dead driver left RUNNING.

Real parts throughout: `vtrlab sweep` as a user runs it (its private local Ray), an MLflow tracking server
on 127.0.0.1, the small synthetic benchmark and the pretrained tiny backbone."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from servers import MlflowServer, run_vtrlab, wait_for
from vtrlab.errors import ConfigError
from vtrlab.tracking.client import Tracker
from vtrlab.tracking.lifecycle import reconcile
from vtrlab.tracking.records import TAG_DRIVER, TAG_HEARTBEAT, RunState
from vtrlab.tracking.registry import CHAMPION, register_run

pytestmark = pytest.mark.slow
MODEL = "vtrlab-synthetic-vtr-tiny"


@pytest.fixture(scope="module")
def tracking(tmp_path_factory):
    """An MLflow tracking server of this module, and the environment a user would have."""
    root = tmp_path_factory.mktemp("lifecycle")
    server = MlflowServer(root, str(root / "artifacts")).start()
    env = {**os.environ, "MLFLOW_TRACKING_URI": server.uri, "VTRLAB_HOME": str(root / "home")}
    for name in ("RAY_ADDRESS", "VTRLAB_TEST_FAULT"):
        env.pop(name, None)
    yield {"root": root, "server": server, "env": env}
    server.stop()


@pytest.fixture(scope="module")
def world(tracking, synth_small, pretrained_backbone):
    """The tracking server plus the small synthetic benchmark and the pretrained tiny backbone."""
    return {**tracking, "data": synth_small, "weights": pretrained_backbone}


def write_spec(world: dict, name: str, methods: dict, **changes) -> Path:
    spec = {
        "name": name,
        "backbone": "vtr-tiny",
        "weights": world["weights"],
        "benchmarks": ["synthetic"],
        "data": {"synthetic": world["data"]},
        "train": {"epochs": 3, "batch_size": 32, "epoch_batches": 4, "eval_batch_size": 64, "workers": 1},
        "methods": methods,
        "budget": {"trials": 3, "max_concurrent": 1, "grace_period": 1, "reduction_factor": 4},
        "objective": {"metric": "t2v_MnR", "mode": "min"},
        **changes,
    }
    path = world["root"] / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def trial_runs(tracker: Tracker, experiment: str) -> list:
    found = tracker.experiment(experiment)
    return tracker.search_runs([found.experiment_id], "tags.`vtrlab.kind` = 'trial'") if found else []


def epochs_of(tracker: Tracker, run_id: str) -> list[int]:
    return [step for step, _ in tracker.metric_history(run_id, "rsum")]


def start_sweep(spec: Path, env: dict, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "vtrlab.cli", "sweep", str(spec), *extra],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def assert_accounted(tracker: Tracker, experiment: str, epochs: int) -> list:
    runs = trial_runs(tracker, experiment)
    assert runs
    for run in runs:
        steps = epochs_of(tracker, run.run_id)
        assert len(steps) == len(set(steps)), f"{run.name} logged an epoch twice: {steps}"
        assert run.status.terminal, f"{run.name} is {run.status}"
        if len(steps) == epochs:
            assert run.status == RunState.FINISHED and "asha_stopped" not in run.tags, (run.name, run.status)
        elif run.status == RunState.KILLED:
            assert run.tags["asha_stopped"].startswith(f"after epoch {len(steps)} ")
        else:
            assert run.status == RunState.FAILED and run.tags.get("error"), run.name
    return runs


def private_ray_of(driver: subprocess.Popen) -> str:
    """The mark (and temp dir) of the private Ray a running `vtrlab sweep` started (its watchdog's)."""
    import psutil

    from vtrlab.ray_watchdog import MARK_ENV

    for child in psutil.Process(driver.pid).children(recursive=True):
        try:
            mark = child.environ().get(MARK_ENV)
        except psutil.Error:
            continue
        if mark:
            return mark
    raise AssertionError(f"the driver {driver.pid} has no private Ray")


def test_a_driver_killed_mid_trial_is_resumed_with_every_trial_accounted_once(world, s3_bucket):
    """The driver is SIGKILLed in the middle of the second trial's second epoch; its private Ray dies with
    it, temp dir and all; `--resume` finishes the sweep from the state and checkpoints in S3: nothing
    RUNNING, no epoch twice, every trial with all epochs FINISHED and not marked stopped, one registry
    version."""
    from vtrlab.ray_watchdog import marked_processes

    methods = {"mv-adapter": {"knobs": {"width": 16}, "search": {"lr": {"float": [1e-4, 1e-2], "log": True}}}}
    spec = write_spec(world, "lc-kill", methods, storage=f"{s3_bucket}/shared")
    env = {**world["env"], **{k: v for k, v in os.environ.items() if k.startswith("AWS_")}}  # the S3 endpoint
    tracker = Tracker(world["server"].uri)
    driver = start_sweep(spec, env)

    def second_trial_in_its_second_epoch():
        runs = sorted(trial_runs(tracker, "sweep-lc-kill"), key=lambda r: r.start_ms)
        return len(runs) >= 2 and epochs_of(tracker, runs[1].run_id) == [0]

    try:
        wait_for(second_trial_in_its_second_epoch, 900, "the second trial's first epoch", driver)
        killed_ray = private_ray_of(driver)
        assert marked_processes(killed_ray) and Path(killed_ray).is_dir()
        time.sleep(1.0)
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=60)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert any(run.status == RunState.RUNNING for run in trial_runs(tracker, "sweep-lc-kill"))
    resumed = run_vtrlab(["sweep", str(spec), "--resume"], env, timeout=1500)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-5000:]
    assert not marked_processes(killed_ray), [(p.pid, p.name()) for p in marked_processes(killed_ray)]
    assert not Path(killed_ray).exists()  # the killed driver's watchdog took the temp dir along
    runs = assert_accounted(tracker, "sweep-lc-kill", epochs=3)
    counted = [r for r in runs if "lost" not in r.tags.get("error", "")]
    assert len(counted) == 3  # the budget: a trial lost before Tune's snapshot was replaced, not doubled
    assert all(r.tags["vtrlab.checkpoints"].startswith(f"{s3_bucket}/shared/") for r in runs)
    versions = tracker.versions(MODEL, {"sweep": "lc-kill"})
    assert len(versions) == 1, versions


def test_a_tracking_server_down_for_30_s_mid_trial_loses_and_duplicates_nothing(world):
    methods = {"bottleneck": {"knobs": {"width": 16}, "train": {"lr": 2e-3}}}
    spec = write_spec(world, "lc-blink", methods, train={"epochs": 4, "batch_size": 32, "epoch_batches": 6})
    tracker = Tracker(world["server"].uri)
    driver = start_sweep(spec, world["env"])
    try:
        wait_for(
            lambda: any(epochs_of(tracker, r.run_id) for r in trial_runs(tracker, "sweep-lc-blink")),
            900,
            "the first epoch",
            driver,
        )
        world["server"].stop()
        time.sleep(30)
        world["server"].start()
        output, _ = driver.communicate(timeout=1200)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode == 0, output[-5000:]
    (run,) = trial_runs(tracker, "sweep-lc-blink")
    assert run.status == RunState.FINISHED
    assert epochs_of(tracker, run.run_id) == [0, 1, 2, 3]


@pytest.fixture(scope="module")
def raised(world) -> dict:
    """A finished sweep in which one trial raised at every attempt (bottleneck) and one finished (zero-shot)."""
    methods = {"zero-shot": {}, "bottleneck": {"knobs": {"width": 16}, "train": {"lr": 2e-3}}}
    # no worker-group restarts inside an attempt (train.max_failures: 0): the retries counted here are Tune's
    train = {"epochs": 2, "batch_size": 32, "epoch_batches": 3, "max_failures": 0}
    spec = write_spec(world, "lc-raise", methods, train=train)
    env = {**world["env"], "VTRLAB_TEST_FAULT": "raise@0"}  # every training step of epoch 0 on: zero-shot has none
    result = run_vtrlab(["sweep", str(spec)], env, timeout=1500)
    return {"spec": spec, "env": env, "result": result}


def test_a_trial_that_raises_is_failed_retried_once_and_reported(world, raised):
    result = raised["result"]
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    assert "1 of 2 trials failed" in result.stdout + result.stderr
    tracker = Tracker(world["server"].uri)
    runs = {r.tags["method"]: r for r in trial_runs(tracker, "sweep-lc-raise")}
    failed = runs["bottleneck"]
    assert failed.status == RunState.FAILED and "injected failure at epoch 0" in failed.tags["error"]
    assert failed.tags["vtrlab.attempts"] == "2"  # the first attempt and one retry (budget.trial_retries: 1)
    assert runs["zero-shot"].status == RunState.FINISHED
    compare = run_vtrlab(["compare", "-e", "sweep-lc-raise", "--json", "--no-log"], world["env"], timeout=300)
    assert compare.returncode == 0, compare.stderr[-3000:]
    report = json.loads(compare.stdout)
    assert report["failed_runs"] == 1 and {t["method"] for t in report["trials"]} == {"zero-shot"}
    # the trial used its retries, so its pair is done: a resume trains nothing and still reports it
    strict = run_vtrlab(["sweep", str(raised["spec"]), "--resume", "--strict"], raised["env"], timeout=600)
    assert strict.returncode == 4 and "1 of 2 trials failed" in strict.stderr, strict.stderr[-3000:]
    assert len(trial_runs(tracker, "sweep-lc-raise")) == 2


def test_a_resumed_spec_that_changed_is_refused_naming_the_change(world, raised):
    ledger = Path(world["env"]["VTRLAB_HOME"]) / "sweeps" / "lc-raise"
    before = (ledger / "latest.json").read_text()
    data = yaml.safe_load(raised["spec"].read_text())
    data["budget"]["trials"] = 5
    data["methods"]["lora"] = {}
    changed = world["root"] / "lc-change.yaml"  # the same sweep (its name), edited since
    changed.write_text(yaml.safe_dump(data))
    resumed = run_vtrlab(["sweep", str(changed), "--resume"], world["env"], timeout=300)
    assert resumed.returncode == 2, resumed.stderr[-3000:]
    message = " ".join(resumed.stderr.split())
    assert "budget.trials" in message and "methods.lora" in message and "lc-change.yaml" in message
    assert (ledger / "latest.json").read_text() == before


def _race(uri: str, model: str, entrants: list[tuple[str, float]]) -> list[BaseException]:
    """Register every (run id, value) at once from its own thread; the errors raised."""
    barrier = threading.Barrier(len(entrants))
    errors: list[BaseException] = []

    def register(run_id: str, value: float) -> None:
        try:
            barrier.wait()
            source = f"runs:/{run_id}/adapter"
            register_run(Tracker(uri), model, run_id, source, {"t2v_R1": value}, "t2v_R1", "max", {})
        except BaseException as err:  # reported by the caller
            errors.append(err)

    threads = [threading.Thread(target=register, args=entrant) for entrant in entrants]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def test_two_registrations_racing_leave_the_champion_on_the_better_version(tracking):
    uri = tracking["server"].uri
    tracker = Tracker(uri)
    for round_ in range(4):
        model = f"vtrlab-race-{round_}"
        runs = [tracker.find_or_create_run("lc-race", f"race/{round_}/{i}", f"race-{i}", {})[0] for i in range(2)]
        values = [10.0, 20.0] if round_ % 2 else [20.0, 10.0]
        errors = _race(uri, model, [(run.run_id, value) for run, value in zip(runs, values, strict=True)])
        assert not errors, errors
        champion = tracker.version_by_alias(model, CHAMPION)
        assert champion.run_id == runs[values.index(20.0)].run_id, (round_, champion)
        assert len(tracker.versions(model)) == 2
        source = f"runs:/{runs[0].run_id}/adapter"
        again = register_run(tracker, model, runs[0].run_id, source, {"t2v_R1": 1.0}, "t2v_R1", "max", {})
        assert not again.created and len(tracker.versions(model)) == 2  # a run is registered once


def test_a_half_uploaded_adapter_is_completed_before_it_counts(tracking, tmp_path):
    """Directly, and as registration does it: the best trial's broken `adapter/` has no checkpoint left (skipped,
    loudly); the next best's is uploaded again from its Ray Train checkpoint, then registered."""
    from model_helpers import tiny_model
    from vtrlab.model.artifacts import CONFIG_NAME, save_adapter
    from vtrlab.sweep.driver import register_best
    from vtrlab.train.tracked import TAG_CHECKPOINTS, adapter_intact, ensure_adapter_logged
    from vtrlab.tuning.runner import TrialOutcome

    tracker = Tracker(tracking["server"].uri)
    checkpoint = save_adapter(tiny_model("bottleneck", width=8), tmp_path / "checkpoint")
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / CONFIG_NAME).write_bytes((checkpoint / CONFIG_NAME).read_bytes())

    def half_uploaded(key: str, checkpoints: Path | None) -> str:
        run, _ = tracker.find_or_create_run("lc-upload", key, key.replace("/", "-"), {})
        if checkpoints is not None:
            tracker.set_tags(run.run_id, {TAG_CHECKPOINTS: str(checkpoints)})
        tracker.log_dir(run.run_id, partial, "adapter")  # the tensor file never arrived
        assert not adapter_intact(tracker, run.run_id)
        return run.run_id

    direct = half_uploaded("upload/1", None)
    ensure_adapter_logged(tracker, direct, checkpoint)
    assert adapter_intact(tracker, direct)

    trained = tmp_path / "train" / "train-b"  # what Ray Train keeps: the newest checkpoint_* folder
    save_adapter(tiny_model("bottleneck", width=8), trained / "checkpoint_000002")
    lost = half_uploaded("upload/best", tmp_path / "train" / "train-a")  # its checkpoints are gone
    completed = half_uploaded("upload/next", trained)
    trials = [
        TrialOutcome(trial, run_id, RunState.FINISHED, 3, 3, {"t2v_R1": value}, {}, method="bottleneck")
        for trial, run_id, value in (("a", lost, 30.0), ("b", completed, 20.0), ("c", direct, 10.0))
    ]
    said: list[str] = []
    registration = register_best(tracker, "vtrlab-lc-upload", trials, "t2v_R1", "max", {"sweep": "x"}, said.append)
    assert registration is not None and registration.created
    assert tracker.version("vtrlab-lc-upload", registration.version).run_id == completed
    assert adapter_intact(tracker, completed)
    assert not adapter_intact(tracker, lost)
    (warning,) = said
    assert warning.startswith(f"warning: run {lost} (trial a) not registered") and "holds no checkpoint" in warning


def test_a_driver_that_stops_closes_its_running_children(tmp_path, monkeypatch):
    """What a sweep or regression does when Ray dies under `tuner.fit()`: every RUNNING child of its run
    ends FAILED with the reason; ended children and other parents' runs are left as they are (a real
    MLflow store: SQLite in tmp)."""
    from vtrlab.tracking.lifecycle import close_children

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("VTRLAB_HOME", str(tmp_path))
    tracker = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}")

    def run(key: str, parent: str | None = None) -> str:
        return tracker.find_or_create_run("lc-close", key, key, {}, parent_run_id=parent)[0].run_id

    parent, other = run("sweep/a"), run("sweep/b")
    running = [run(f"sweep/a/{i}", parent) for i in range(3)]
    finished, killed, neighbour = run("sweep/a/done", parent), run("sweep/a/asha", parent), run("sweep/b/0", other)
    tracker.end_run(finished, RunState.FINISHED)
    tracker.end_run(killed, RunState.KILLED)
    tracker.end_run(parent, RunState.FAILED, error="RaySystemError: the Ray cluster died")
    closed = close_children(tracker, parent, "the sweep stopped: RaySystemError: the Ray cluster died")
    assert sorted(c.run_id for c in closed) == sorted(running)
    for run_id in running:
        record = tracker.run(run_id)
        assert record.status == RunState.FAILED and "Ray cluster died" in record.tags["error"], record
    assert tracker.run(finished).status == RunState.FINISHED and "error" not in tracker.run(finished).tags
    assert tracker.run(killed).status == RunState.KILLED
    assert tracker.run(neighbour).status == RunState.RUNNING and tracker.run(other).status == RunState.RUNNING
    assert close_children(tracker, parent, "again") == []
    tracker.find_or_create_run("lc-close", "sweep/a/0", "sweep/a/0", {}, parent_run_id=parent)  # a resume
    assert tracker.run(running[0]).status == RunState.RUNNING


def test_a_run_key_in_two_experiments_is_an_error_not_a_guess(tracking):
    tracker = Tracker(tracking["server"].uri)
    for experiment in ("lc-key-a", "lc-key-b"):
        exp = tracker.experiment(experiment, create=True)
        tracker._client.create_run(exp.experiment_id, tags={"vtrlab.key": "shared/key"})
    with pytest.raises(ConfigError, match=r"run key 'shared/key' matches runs in 2 experiments.*lc-key-a"):
        tracker.find_run("shared/key")


def test_reconcile_closes_the_runs_a_dead_driver_left_running(tracking):
    tracker = Tracker(tracking["server"].uri)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    parent, _ = tracker.find_or_create_run("lc-reconcile", "reconcile/parent", "parent", {"vtrlab.kind": "sweep"})
    import socket

    tracker.set_tags(
        parent.run_id, {TAG_DRIVER: f"{socket.gethostname()}:{dead.stdout.strip()}", TAG_HEARTBEAT: time.time()}
    )
    child, _ = tracker.find_or_create_run("lc-reconcile", "reconcile/child", "child", {}, parent_run_id=parent.run_id)
    alive, _ = tracker.find_or_create_run("lc-reconcile", "reconcile/alive", "alive", {})
    tracker.set_tags(alive.run_id, {TAG_DRIVER: f"{socket.gethostname()}:{os.getpid()}", TAG_HEARTBEAT: time.time()})
    result = run_vtrlab(["reconcile", "-e", "lc-reconcile"], tracking["env"], timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "2 run(s) closed" in result.stdout
    assert tracker.run(parent.run_id).status == RunState.FAILED
    assert "driver lost" in tracker.run(child.run_id).tags["error"]
    assert tracker.run(alive.run_id).status == RunState.RUNNING  # its driver (this test) lives
    closed = reconcile(tracker, [tracker.experiment("lc-reconcile").experiment_id])
    assert closed == []
