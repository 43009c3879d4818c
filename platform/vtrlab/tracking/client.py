"""`Tracker`: the runs, metrics, artifacts and registry operations vtrlab needs, on MLflow.

This module (with the rest of `vtrlab.tracking`) is the only place that imports mlflow. Everything it
returns is a vtrlab record (`vtrlab.tracking.records`); MLflow's errors become vtrlab errors: an unknown
model, version or alias is a NotFoundError, a refused login a ConfigError naming the server.
"""

from __future__ import annotations

import functools
import os
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from mlflow.entities import Metric, Param, RunTag, ViewType
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from vtrlab.errors import ConfigError, NotFoundError
from vtrlab.tracking.records import (
    TAG_ERROR,
    TAG_KEY,
    TAG_PARENT,
    ArtifactFile,
    Experiment,
    RunRecord,
    RunState,
    VersionRecord,
)
from vtrlab.tracking.store import default_artifact_root, tracking_auth_error, tracking_auth_errors, tracking_uri
from vtrlab.tracking.views import experiment_tags

T = TypeVar("T")
MAX_PARAM_LENGTH = 6000
MAX_TAG_LENGTH = 5000
BATCH = 100  # MLflow's log_batch takes at most 100 params / 1000 metrics per call
MISSING = "RESOURCE_DOES_NOT_EXIST"
EXISTS = "RESOURCE_ALREADY_EXISTS"
# what a logged adapter model needs to run (pinned to the versions that logged it)
ADAPTER_MODEL_REQUIREMENTS = (
    "torch",
    "torchvision",
    "open_clip_torch",
    "safetensors",
    "pydantic",
    "pyyaml",
    "numpy",
    "pillow",
    "av",
    "webdataset",
    "pandas",
)


def _quoted(value: str) -> str:
    """`value` as a quoted literal of MLflow's filter syntax (vtrlab's own keys never hold quotes)."""
    if "'" in value:
        raise ConfigError(f"tracking filter value {value!r} contains a quote")
    return f"'{value}'"


def tag_filter(tags: Mapping[str, str]) -> str:
    """An MLflow filter string matching runs that carry every tag in `tags`."""
    return " and ".join(f"tags.`{key}` = {_quoted(str(value))}" for key, value in tags.items())


def _run_record(run) -> RunRecord:
    info, data = run.info, run.data
    return RunRecord(
        run_id=info.run_id,
        name=info.run_name or info.run_id,
        experiment_id=info.experiment_id,
        status=RunState(info.status),
        start_ms=int(info.start_time or 0),
        end_ms=int(info.end_time) if info.end_time else None,
        tags=dict(data.tags),
        params=dict(data.params),
        metrics=dict(data.metrics),
    )


def _version_record(version) -> VersionRecord:
    return VersionRecord(
        model=version.name,
        version=str(version.version),
        run_id=version.run_id or "",
        source=version.source or "",
        tags=dict(version.tags or {}),
        aliases=list(version.aliases or []),
        created_ms=int(version.creation_timestamp or 0),
    )


def _guarded(method: Callable[..., T]) -> Callable[..., T]:
    """Turn a refused request (401/403) into one ConfigError naming the tracking server."""

    @functools.wraps(method)
    def call(self: Tracker, *args: Any, **kwargs: Any) -> T:
        with tracking_auth_errors(self.uri):
            return method(self, *args, **kwargs)

    return call


def _is(err: MlflowException, code: str) -> bool:
    return getattr(err, "error_code", None) == code


class Tracker:
    """A tracking store at `uri` (default: MLFLOW_TRACKING_URI, else the embedded SQLite store)."""

    def __init__(self, uri: str | None = None):
        self.uri = uri or tracking_uri()
        self._client = MlflowClient(tracking_uri=self.uri)

    # ---- experiments ---------------------------------------------------------------------------
    @_guarded
    def experiment(self, name: str, create: bool = False) -> Experiment | None:
        """Experiment `name` (restored if deleted), created with the embedded artifact root when `create`."""
        found = self._client.get_experiment_by_name(name)
        if found is not None:
            if found.lifecycle_stage == "deleted":
                self._client.restore_experiment(found.experiment_id)
            return Experiment(found.experiment_id, found.name)
        if not create:
            return None
        root = default_artifact_root()
        try:
            experiment_id = self._client.create_experiment(
                name, artifact_location=f"{root}/{name}" if root else None, tags=experiment_tags()
            )
        except MlflowException as err:
            if not _is(err, EXISTS):
                raise
            experiment_id = self._client.get_experiment_by_name(name).experiment_id  # a concurrent creator
        return Experiment(experiment_id, name)

    @_guarded
    def open_on_training_runs(self, experiment_id: str) -> bool:
        """Tag an experiment (e.g. one made before vtrlab set them) so the MLflow UI opens it on vtrlab's
        training-runs view (`vtrlab.tracking.views`); False when this user may not change it."""
        tags = self._client.get_experiment(experiment_id).tags
        try:
            for key, value in experiment_tags().items():
                if tags.get(key) != value:
                    self._client.set_experiment_tag(experiment_id, key, value)
        except MlflowException as err:
            if _is(err, "PERMISSION_DENIED") or _is(err, "UNAUTHENTICATED"):
                return False
            raise
        return True

    @_guarded
    def experiments(self) -> list[Experiment]:
        """Every active experiment, newest first (MLflow's `Default` left out)."""
        found = self._client.search_experiments(order_by=["creation_time DESC"])
        return [Experiment(e.experiment_id, e.name) for e in found if e.name != "Default"]

    # ---- runs ----------------------------------------------------------------------------------
    @_guarded
    def run(self, run_id: str) -> RunRecord:
        return _run_record(self._client.get_run(run_id))

    @_guarded
    def search_runs(
        self,
        experiment_ids: list[str],
        filter_string: str = "",
        order_by: list[str] | None = None,
        limit: int | None = None,
    ) -> list[RunRecord]:
        """Every matching run (all pages, or the first `limit`)."""
        if not experiment_ids:
            return []
        records: list[RunRecord] = []
        token = None
        while True:
            page = self._client.search_runs(
                experiment_ids, filter_string, ViewType.ACTIVE_ONLY, min(limit or 1000, 1000), order_by, token
            )
            records.extend(_run_record(run) for run in page)
            token = page.token
            if not token or (limit is not None and len(records) >= limit):
                return records[:limit] if limit is not None else records

    def runs_tagged(self, tags: Mapping[str, str], experiment_ids: list[str] | None = None) -> list[RunRecord]:
        """Runs carrying every tag in `tags`, in `experiment_ids` (default: every experiment)."""
        ids = experiment_ids if experiment_ids is not None else [e.experiment_id for e in self.experiments()]
        return self.search_runs(ids, tag_filter(tags))

    def find_run(self, key: str) -> RunRecord | None:
        """The run whose `vtrlab.key` is `key`, in any experiment; a key matching runs in two experiments
        is an error, not a guess."""
        found = self.runs_tagged({TAG_KEY: key})
        experiments = {run.experiment_id for run in found}
        if len(experiments) > 1:
            names = {e.experiment_id: e.name for e in self.experiments()}
            raise ConfigError(
                f"run key {key!r} matches runs in {len(experiments)} experiments "
                f"({', '.join(sorted(names.get(i, i) for i in experiments))}) of {self.uri}; "
                "delete the stray runs or give the run another key"
            )
        return min(found, key=lambda run: run.start_ms) if found else None

    @_guarded
    def find_or_create_run(
        self,
        experiment: str,
        key: str,
        name: str,
        tags: Mapping[str, str],
        parent_run_id: str | None = None,
    ) -> tuple[RunRecord, bool]:
        """(run, created): the run keyed `key`, set RUNNING again if it had ended, or a new one in
        `experiment`. A key found in another experiment is refused."""
        found = self.find_run(key)
        exp = self.experiment(experiment, create=True)
        if found is not None:
            if found.experiment_id != exp.experiment_id:
                raise ConfigError(
                    f"run key {key!r} belongs to a run in another experiment than {experiment!r} of {self.uri}"
                )
            if found.status != RunState.RUNNING:
                self._client.update_run(found.run_id, status=RunState.RUNNING.value)
            return self.run(found.run_id), False
        all_tags = {TAG_KEY: key, **{k: str(v) for k, v in tags.items()}}
        if parent_run_id:
            all_tags[TAG_PARENT] = parent_run_id
        run = self._client.create_run(exp.experiment_id, run_name=name, tags=all_tags)
        return _run_record(run), True

    @_guarded
    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        """Log the params not yet on the run (MLflow refuses to change one; a rerun logs the same)."""
        existing = self._client.get_run(run_id).data.params
        new = [Param(k, str(v)[:MAX_PARAM_LENGTH]) for k, v in params.items() if k not in existing]
        for start in range(0, len(new), BATCH):
            self._client.log_batch(run_id, params=new[start : start + BATCH])

    @_guarded
    def log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int = 0) -> None:
        """Log finite numbers (MLflow refuses NaN) at `step`, in batches."""
        now = int(time.time() * 1000)
        batch = [
            Metric(k, float(v), now, step)
            for k, v in metrics.items()
            if isinstance(v, int | float) and not isinstance(v, bool) and float(v) == float(v)
        ]
        for start in range(0, len(batch), 1000):
            self._client.log_batch(run_id, metrics=batch[start : start + 1000])

    def log_series(self, run_id: str, key: str, values: list[float]) -> None:
        """`values` as the metric `key` at steps 0, 1, ..."""
        now = int(time.time() * 1000)
        batch = [Metric(key, float(v), now, step) for step, v in enumerate(values)]
        for start in range(0, len(batch), 1000):
            self._client.log_batch(run_id, metrics=batch[start : start + 1000])

    @_guarded
    def metric_history(self, run_id: str, key: str) -> list[tuple[int, float]]:
        """(step, value) of every logged value of `key`, in step order."""
        return sorted((int(m.step), float(m.value)) for m in self._client.get_metric_history(run_id, key))

    def logged_epochs(self, run_id: str, marker: str = "rsum") -> set[int]:
        """The epochs a run has logged (the steps of its `marker` metric)."""
        return {step for step, _ in self.metric_history(run_id, marker)}

    def log_epoch(self, run_id: str, epoch: int, metrics: Mapping[str, float], marker: str = "rsum") -> bool:
        """Log one epoch's metrics in one batch unless that epoch is there already (after a restart);
        returns whether anything was logged."""
        if epoch in self.logged_epochs(run_id, marker):
            return False
        self.log_metrics(run_id, metrics, step=epoch)
        return True

    @_guarded
    def set_tags(self, run_id: str, tags: Mapping[str, Any]) -> None:
        batch = [RunTag(k, str(v)[:MAX_TAG_LENGTH]) for k, v in tags.items()]
        for start in range(0, len(batch), BATCH):
            self._client.log_batch(run_id, tags=batch[start : start + BATCH])

    @_guarded
    def delete_tag(self, run_id: str, key: str) -> None:
        try:
            self._client.delete_tag(run_id, key)
        except MlflowException as err:
            if not _is(err, MISSING):
                raise

    @_guarded
    def end_run(self, run_id: str, state: RunState, error: str | None = None, tags: Mapping[str, Any] | None = None):
        """End the run in `state`; a FAILED run carries `error` as its `error` tag, any other state clears
        an earlier attempt's error."""
        extra = dict(tags or {})
        if state == RunState.FAILED:
            extra[TAG_ERROR] = error or "failed (no error recorded)"
        if extra:
            self.set_tags(run_id, extra)
        if state != RunState.FAILED and TAG_ERROR in self._client.get_run(run_id).data.tags:
            self.delete_tag(run_id, TAG_ERROR)
        self._client.set_terminated(run_id, status=state.value)

    @_guarded
    def mark_running(self, run_id: str) -> None:
        self._client.update_run(run_id, status=RunState.RUNNING.value)

    # ---- artifacts -----------------------------------------------------------------------------
    @_guarded
    def log_text(self, run_id: str, text: str, path: str) -> None:
        self._client.log_text(run_id, text, path)

    @_guarded
    def log_file(self, run_id: str, local_path: str | os.PathLike, artifact_dir: str | None = None) -> None:
        self._client.log_artifact(run_id, str(local_path), artifact_dir)

    @_guarded
    def log_dir(self, run_id: str, local_dir: str | os.PathLike, artifact_path: str) -> None:
        self._client.log_artifacts(run_id, str(local_dir), artifact_path=artifact_path)

    @_guarded
    def list_artifacts(self, run_id: str, path: str | None = None) -> list[ArtifactFile]:
        try:
            files = self._client.list_artifacts(run_id, path)
        except (MlflowException, OSError):
            return []
        return [ArtifactFile(f.path, f.file_size, f.is_dir) for f in files]

    @_guarded
    def download(self, run_id: str, path: str, dst: str | os.PathLike) -> Path:
        """Download artifact `path` of a run into `dst`; returns the local path."""
        with quiet_progress():
            return Path(self._client.download_artifacts(run_id, path, str(dst)))

    def download_uri(self, uri: str, dst: str | os.PathLike) -> Path:
        """Download any artifact URI (`runs:/...`, `models:/...`, a store URL) into `dst`."""
        import mlflow.artifacts

        # a `models:/<id>` URI is resolved through the global tracking URI whatever `tracking_uri` says
        with self._as_global_uri(), quiet_progress():
            return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(dst), tracking_uri=self.uri))

    def system_metrics(self, run_id: str, interval: float = 2.0):
        """A started monitor sampling CPU, memory and GPU use into the run until `.finish()`."""
        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

        monitor = SystemMetricsMonitor(run_id, sampling_interval=interval, resume_logging=True, tracking_uri=self.uri)
        monitor.start()
        return monitor

    # ---- logged models (MLflow 3) --------------------------------------------------------------
    @_guarded
    def logged_model_of(self, run_id: str, name: str) -> tuple[str, str] | None:
        """(model URI, model id) of the logged model `name` a run already has, or None."""
        experiment_id = self._client.get_run(run_id).info.experiment_id
        found = self._client.search_logged_models(
            [experiment_id], filter_string=f"source_run_id = {_quoted(run_id)} AND name = {_quoted(name)}"
        )
        ready = [m for m in found if str(getattr(m, "status", "READY")).endswith("READY")]
        return (f"models:/{ready[0].model_id}", ready[0].model_id) if ready else None

    @_guarded
    def log_adapter_model(self, run_id: str, adapter_dir: str | os.PathLike, name: str) -> tuple[str, str]:
        """Log an adapter directory as the MLflow pyfunc model `name` of run `run_id` (logged as code, see
        `vtrlab.tracking.adapter_model`; once per run: an existing one is returned); (model URI, model id)."""
        existing = self.logged_model_of(run_id, name)
        if existing is not None:
            return existing
        from importlib.metadata import PackageNotFoundError, version

        import mlflow
        import numpy as np
        from mlflow.models import Model, ModelSignature
        from mlflow.types import ColSpec, Schema, TensorSpec

        import vtrlab

        signature = ModelSignature(
            inputs=Schema([ColSpec("string", "text", required=False), ColSpec("string", "video", required=False)]),
            outputs=Schema([TensorSpec(np.dtype("float32"), (-1, -1))]),  # [rows, the backbone's embedding width]
        )
        requirements = []
        for package in ADAPTER_MODEL_REQUIREMENTS:
            try:
                requirements.append(f"{package}=={version(package)}")
            except PackageNotFoundError:
                requirements.append(package)
        # Created here, in the run's own experiment: `Model.log` would create it in the active experiment
        # (Default, where a basic-auth server refuses users who may write only their sweep's experiment).
        logged = self._client.create_logged_model(
            experiment_id=self._client.get_run(run_id).info.experiment_id,
            name=name,
            source_run_id=run_id,
            tags={"vtrlab.run_id": run_id},
        )
        with self._as_global_uri(), quiet_progress(), warnings.catch_warnings():
            # the signature is explicit; an input example would be validated by loading the adapter and its
            # backbone in this process (MLflow's serving-input check), only to log it
            warnings.filterwarnings("ignore", message=".*An input example was not provided", category=UserWarning)
            info = Model.log(
                artifact_path=None,  # deprecated for `name`, but still a required argument (MLflow 3.17)
                name=name,
                flavor=mlflow.pyfunc,
                run_id=run_id,
                model_id=logged.model_id,  # finalised READY (or FAILED) by Model.log
                python_model=str(Path(__file__).with_name("adapter_model.py")),
                artifacts={"adapter": str(adapter_dir)},
                code_paths=[str(Path(vtrlab.__file__).parent)],
                signature=signature,
                pip_requirements=requirements,
            )
        return info.model_uri, info.model_id

    @contextmanager
    def _as_global_uri(self) -> Iterator[None]:
        """Make this tracker's store MLflow's global one for a call that reads it (fluent APIs, and the
        registry store resolving a `models:/<id>` source, which MLflow does through the global URI)."""
        # mlflow.set_tracking_uri also writes MLFLOW_TRACKING_URI into the environment, and restoring the
        # value get_tracking_uri() returned would pin MLflow's default (./mlflow.db) there for the rest of the
        # process; so the module global and the variable are put back exactly as they were (both unset, when
        # they were). MLflow's own _use_tracking_uri would unset a variable the user had set.
        from mlflow.tracking._tracking_service import utils

        previous_global, previous_env = utils._tracking_uri, os.environ.get("MLFLOW_TRACKING_URI")
        utils.set_tracking_uri(self.uri)
        try:
            yield
        finally:
            utils.set_tracking_uri(previous_global)
            if previous_env is None:
                os.environ.pop("MLFLOW_TRACKING_URI", None)
            else:
                os.environ["MLFLOW_TRACKING_URI"] = previous_env

    # ---- registry ------------------------------------------------------------------------------
    @_guarded
    def registered_models(self) -> list[str]:
        return sorted(m.name for m in self._client.search_registered_models())

    @_guarded
    def aliases(self, model: str) -> dict[str, str]:
        """{alias: version} of registered model `model`; NotFoundError when it does not exist."""
        try:
            found = self._client.get_registered_model(model)
        except MlflowException as err:
            if _is(err, MISSING):
                raise NotFoundError(f"no registered model {model!r} at {self.uri}") from None
            raise
        return {alias: str(version) for alias, version in (found.aliases or {}).items()}

    @_guarded
    def ensure_registered_model(self, model: str, description: str = "") -> None:
        """Create registered model `model` unless it exists (a concurrent creator is fine)."""
        try:
            self._client.get_registered_model(model)
            return
        except MlflowException as err:
            if not _is(err, MISSING):
                raise
        try:
            self._client.create_registered_model(model, description=description)
        except MlflowException as err:
            if not _is(err, EXISTS):
                raise

    @_guarded
    def versions(self, model: str, tags: Mapping[str, str] | None = None) -> list[VersionRecord]:
        """Every version of `model` (carrying `tags`), oldest first, aliases filled in."""
        query = f"name = {_quoted(model)}" + "".join(
            f" and tags.`{k}` = {_quoted(str(v))}" for k, v in (tags or {}).items()
        )
        found, token = [], None
        while True:
            page = self._client.search_model_versions(query, max_results=1000, page_token=token)
            found.extend(_version_record(v) for v in page)
            token = page.token
            if not token:
                break
        try:
            aliases = self.aliases(model)
        except NotFoundError:
            return []
        for record in found:
            record.aliases = sorted(a for a, v in aliases.items() if v == record.version)
        return sorted(found, key=lambda v: int(v.version))

    @_guarded
    def version(self, model: str, version: str) -> VersionRecord:
        try:
            found = _version_record(self._client.get_model_version(model, str(version)))
        except MlflowException as err:
            if _is(err, MISSING):
                raise NotFoundError(f"model {model!r} has no version {version} at {self.uri}") from None
            raise
        found.aliases = sorted(a for a, v in self.aliases(model).items() if v == found.version)
        return found

    def version_by_alias(self, model: str, alias: str) -> VersionRecord | None:
        version = self.aliases(model).get(alias)
        return self.version(model, version) if version is not None else None

    @_guarded
    def create_version(
        self, model: str, source: str, run_id: str, tags: Mapping[str, str], model_id: str | None = None
    ) -> VersionRecord:
        with self._as_global_uri():  # an embedded store resolves a logged model's source through it
            version = self._client.create_model_version(
                model, source=source, run_id=run_id, tags={k: str(v) for k, v in tags.items()}, model_id=model_id
            )
        return _version_record(version)

    @_guarded
    def set_alias(self, model: str, alias: str, version: str, attempts: int = 5) -> None:
        """Point `alias` at `version`. Two writers setting the same alias at once can collide in the store
        (a unique-constraint error on the alias row): retried, since the alias then exists and an update
        succeeds."""
        for attempt in range(attempts):
            try:
                self._client.set_registered_model_alias(model, alias, str(version))
                return
            except MlflowException as err:
                if tracking_auth_error(err, self.uri) is not None or attempt == attempts - 1:
                    raise
                time.sleep(0.2 * (attempt + 1))


@contextmanager
def quiet_progress() -> Iterator[None]:
    """MLflow's artifact progress bars off (unless the user set MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR)."""
    name = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    if name in os.environ:
        yield
        return
    os.environ[name] = "false"
    try:
        yield
    finally:
        os.environ.pop(name, None)
