"""One tracked training run, end to end: the single path `vtrlab train`, every sweep trial and every
regression seed take.

`run_tracked(spec, identity, ...)`:
1. finds the MLflow run keyed `identity.key` (a restarted or resumed run continues in it) or creates it;
2. logs the spec's params once;
3. fits a Ray Train TorchTrainer; a trainer of the same name and storage continues from its last
   checkpoint, and the loop logs each epoch's metrics once (`Tracker.log_epoch`);
4. uploads the adapter from the final checkpoint unless an intact copy is there already, and verifies it
   (every file present, the checksum its config records);
5. ends the run FINISHED, or FAILED with the error as its `error` tag.

Errors that the user must fix (vtrlab's own bad-input errors raised in a worker) are not retried by Ray
Train and come back as themselves, one line, not as a Ray traceback.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vtrlab.config import TrainSpec
from vtrlab.errors import ArtifactError, StorageError, VtrlabError
from vtrlab.storage import checkpoint_directory
from vtrlab.tracking.client import Tracker
from vtrlab.tracking.provenance import flatten_params
from vtrlab.tracking.records import TAG_KIND, RunRecord, RunState

ADAPTER_DIR = "adapter"
TAG_ATTEMPTS = "vtrlab.attempts"
TAG_CHECKPOINTS = "vtrlab.checkpoints"


@dataclass(frozen=True)
class RunIdentity:
    """Where a run lives in MLflow: its experiment, stable key, display name, tags and parent run."""

    experiment: str
    key: str
    name: str
    tags: Mapping[str, str] = field(default_factory=dict)
    parent_run_id: str | None = None


@dataclass(frozen=True)
class RunOutcome:
    run_id: str
    state: RunState
    epochs: int
    metrics: dict[str, float]


def run_tags(spec: TrainSpec, kind: str, sweep: str | None = None) -> dict[str, str]:
    """The tags every run carries, so the MLflow UI compares across methods and sweeps."""
    tags = {TAG_KIND: kind, "method": spec.method, "benchmark": spec.benchmark, "backbone": spec.backbone}
    if spec.method == "rap":
        tags["rap.selection"] = str(spec.knob_values.get("selection", "query-agnostic"))
    if sweep:
        tags["sweep"] = sweep
    return tags


def run_params(spec: TrainSpec) -> dict[str, str]:
    """Every knob (`knob.<name>`, defaults included) and every training field as MLflow params."""
    fields = spec.model_dump(exclude={"knobs"})
    return {**flatten_params(fields), **flatten_params(spec.knob_values, "knob.")}


# ---- errors from workers -------------------------------------------------------------------------


def root_cause(err: BaseException) -> BaseException:
    """The innermost error: through Ray's task wrappers (`cause`), Ray Train's worker-group and controller
    failures, and the wrapper that carries a worker's exception with its traceback (`_base_exc`)."""
    seen = 0
    while seen < 10:
        seen += 1
        failures = getattr(err, "worker_failures", None)
        if failures:
            err = next(iter(failures.values()))
            continue
        inner = (
            getattr(err, "cause", None)
            or getattr(err, "controller_failure", None)
            or getattr(err, "_base_exc", None)  # ray.train.v2's UserExceptionWithTraceback
        )
        if isinstance(inner, BaseException) and inner is not err:
            err = inner
            continue
        break
    return err


def user_error(err: BaseException) -> VtrlabError | None:
    """vtrlab's own bad-input error at the root of `err` (retrying cannot fix it), if that is what it is."""
    cause = root_cause(err)
    if isinstance(cause, VtrlabError) and not isinstance(cause, StorageError):
        return cause
    return None


def one_line(err: BaseException, limit: int = 800) -> str:
    """`Type: message` of the root cause on one line, bounded."""
    cause = root_cause(err)
    text = " ".join(str(cause).split()) or type(cause).__name__
    text = text if len(text) <= limit else text[:limit] + " ..."
    return f"{type(cause).__name__}: {text}"


# ---- the adapter artifact ------------------------------------------------------------------------


def adapter_intact(tracker: Tracker, run_id: str) -> bool:
    """Whether the run's `adapter/` holds a config and its tensor file with the checksum the config records."""
    from vtrlab.model.artifacts import read_adapter_config, verify_checksum

    names = {Path(f.path).name for f in tracker.list_artifacts(run_id, ADAPTER_DIR)}
    if not {"adapter_config.json", "adapter_model.safetensors"} <= names:
        return False
    with tempfile.TemporaryDirectory(prefix="vtrlab-verify-") as tmp:
        try:
            local = tracker.download(run_id, ADAPTER_DIR, tmp)
            verify_checksum(local, read_adapter_config(local))
        except Exception:  # a missing or partial file is a broken artifact, not a crash
            return False
    return True


def ensure_adapter_logged(tracker: Tracker, run_id: str, checkpoint_dir: str | Path | None) -> None:
    """Make the run's `adapter/` an intact copy of the checkpoint's adapter (upload it when missing or
    broken, e.g. half-uploaded); ArtifactError when there is nothing intact to upload."""
    from vtrlab.model.artifacts import CONFIG_NAME, WEIGHTS_NAME, read_adapter_config, verify_checksum

    if adapter_intact(tracker, run_id):
        return
    if checkpoint_dir is None:
        raise ArtifactError(f"run {run_id}: its adapter is missing or broken and no checkpoint is known to upload")
    source = Path(checkpoint_dir)
    verify_checksum(source, read_adapter_config(source))
    with tempfile.TemporaryDirectory(prefix="vtrlab-adapter-") as staging:
        for name in (CONFIG_NAME, WEIGHTS_NAME):
            shutil.copy(source / name, Path(staging) / name)
        tracker.log_dir(run_id, staging, ADAPTER_DIR)
    if not adapter_intact(tracker, run_id):
        raise ArtifactError(f"run {run_id}: the uploaded adapter does not verify (checksum mismatch after upload)")


def ensure_adapter_from_checkpoint(tracker: Tracker, run_id: str, checkpoint) -> None:
    """`ensure_adapter_logged` from a Ray Train checkpoint (local or in object storage)."""
    if adapter_intact(tracker, run_id):
        return
    if checkpoint is None:
        ensure_adapter_logged(tracker, run_id, None)
        return
    with checkpoint_directory(checkpoint) as directory:
        ensure_adapter_logged(tracker, run_id, directory)


# ---- the run -------------------------------------------------------------------------------------


def open_run(tracker: Tracker, identity: RunIdentity) -> RunRecord:
    """Find or create the run `identity`, RUNNING, counting no attempt (a driver that logs provenance
    before `run_tracked` opens it so)."""
    run, _ = tracker.find_or_create_run(
        identity.experiment, identity.key, identity.name, identity.tags, identity.parent_run_id
    )
    return run


def start_run(tracker: Tracker, spec: TrainSpec, identity: RunIdentity) -> str:
    """Find or create the run, log its params once, count the attempt; returns its id."""
    run = open_run(tracker, identity)
    tracker.log_params(run.run_id, run_params(spec))
    attempts = int(run.tags.get(TAG_ATTEMPTS, "0")) + 1
    tracker.set_tags(run.run_id, {TAG_ATTEMPTS: attempts})
    return run.run_id


def run_tracked(
    spec: TrainSpec,
    identity: RunIdentity,
    *,
    tracking_uri: str,
    storage_path: str,
    trainer_name: str,
    in_tune: bool = False,
    started_at: float | None = None,
) -> RunOutcome:
    """Run `spec` as the tracked run `identity` (see the module docstring); returns how it ended."""
    from vtrlab.train.runner import make_trainer

    started_at = time.time() if started_at is None else started_at
    tracker = Tracker(tracking_uri)
    run_id = start_run(tracker, spec, identity)
    tracker.set_tags(run_id, {TAG_CHECKPOINTS: f"{storage_path.rstrip('/')}/{trainer_name}"})
    callbacks: list[Any] = []
    if in_tune:
        from ray.tune.integration.ray_train import TuneReportCallback

        callbacks.append(TuneReportCallback())
    trainer = make_trainer(
        spec,
        name=trainer_name,
        storage_path=storage_path,
        tracking={"uri": tracking_uri, "run_id": run_id, "started_at": started_at},
        callbacks=callbacks,
    )
    try:
        result = trainer.fit()
        ensure_adapter_from_checkpoint(tracker, run_id, result.checkpoint)
    except KeyboardInterrupt:
        tracker.end_run(run_id, RunState.FAILED, error="interrupted (SIGINT/SIGTERM); rerun to continue it")
        raise
    except Exception as err:
        tracker.end_run(run_id, RunState.FAILED, error=one_line(err))
        cause = user_error(err)
        if cause is not None:
            raise cause from None
        raise
    tracker.end_run(run_id, RunState.FINISHED)
    epochs = tracker.logged_epochs(run_id)
    last = tracker.run(run_id).metrics
    return RunOutcome(run_id, RunState.FINISHED, len(epochs), dict(last))
