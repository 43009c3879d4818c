"""`vtrlab sweep`: Ray Tune (Optuna search, ASHA early stopping) over methods x benchmarks, in MLflow.

One Tuner per (benchmark, method): trials of a method compete under ASHA on the same benchmark, and every
method gets its own budget. One trial is one Ray Train run (`vtrlab.train.runner`), reporting each epoch
to Tune through `TuneReportCallback`. MLflow: an experiment per spec, a parent run per sweep, a child run
per trial (found again by its key after a restart), and the best trial per benchmark registered.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vtrlab.atomic import write_text_atomic
from vtrlab.errors import ConfigError
from vtrlab.paths import default_data_url, vtrlab_home
from vtrlab.sweep.spec import SweepSpec, load_sweep_spec
from vtrlab.tracking.provenance import git_commit, package_versions
from vtrlab.tracking.runs import TAG_KIND, client, find_or_create_run, flatten_params, log_params_once
from vtrlab.tracking.store import check_tracking_server, tracking_uri
from vtrlab.train.tuned import check_data_readable

DONE_MARKER = "done.json"


@dataclass
class TrialOutcome:
    benchmark: str
    method: str
    run_id: str
    metrics: dict[str, float]
    epochs: int
    stopped_early: bool
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class SweepOutcome:
    name: str
    parent_run_id: str
    experiment: str
    trials: list[TrialOutcome]
    registrations: list[Any]
    wall_seconds: float


def data_url(spec: SweepSpec, benchmark: str) -> str:
    return os.path.expanduser(spec.data.get(benchmark) or default_data_url(benchmark))


def check_resources(spec: SweepSpec, source: str) -> None:
    """Refuse a budget whose single trial cannot fit the cluster, naming the keys to change."""
    from vtrlab.config import TrainSpec
    from vtrlab.train.tuned import check_cluster_fits, trial_needs

    train = TrainSpec.model_validate({"benchmark": "synthetic", "method": "zero-shot", "data": "-", **spec.train})
    cpus, gpus = trial_needs(train, spec.budget.cpus_per_trial)
    check_cluster_fits(
        cpus,
        gpus,
        source,
        cpu_keys="train.workers x train.cpus_per_worker + budget.cpus_per_trial",
        gpu_keys="train.workers x train.gpus_per_worker",
    )


def run_trial(config: dict[str, Any], context: dict[str, Any]) -> None:
    """The Tune function of one trial: build its TrainSpec, find or create its MLflow run, fit a TorchTrainer."""
    import ray.tune

    from vtrlab.sweep.space import trial_spec
    from vtrlab.train.driver import run_tags
    from vtrlab.train.tuned import fit_tracked

    started_at = time.time()
    spec = SweepSpec.model_validate(context["spec"])
    benchmark, method = context["benchmark"], context["method"]
    train = trial_spec(spec, benchmark, method, config, context["data"])
    trial_id = ray.tune.get_context().get_trial_id()
    fit_tracked(
        train,
        tracking_uri=context["tracking_uri"],
        experiment=context["experiment"],
        key=f"{context['sweep_key']}/{benchmark}/{method}/{trial_id}",
        run_name=f"{method}-{benchmark}-{trial_id}",
        tags={**run_tags(train, "trial", sweep=spec.name), "trial_id": trial_id},
        parent_run_id=context["parent_run_id"],
        trainer_name=f"train-{trial_id}",
        storage_path=context["storage_path"],
        marker_dir=context["marker_dir"],
        started_at=started_at,
    )


class SweepRunner:
    """Runs (or resumes) the sweep of one spec file."""

    def __init__(
        self,
        spec_path: str | Path,
        address: str | None = None,
        resume: bool = False,
        overrides: dict[str, Any] | None = None,
        quiet: bool = False,
    ):
        self.spec_path = Path(spec_path)
        self.spec = load_sweep_spec(self.spec_path)
        if overrides:  # e.g. the quickstart's pretrained backbone weights
            self.spec = SweepSpec.model_validate({**self.spec.model_dump(by_alias=True), **overrides})
        self.address = address
        self.resume = resume
        self.quiet = quiet
        self.experiment = f"sweep-{self.spec.name}"
        self.root = vtrlab_home() / "sweeps" / f"{self.spec.name}-{self.spec.fingerprint()}"

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    def pair_dir(self, benchmark: str, method: str) -> Path:
        return self.root / f"{benchmark}__{method}"

    def finished(self) -> bool:
        """Whether this spec's sweep ran to the end: every (benchmark, method) done and, if the spec
        registers, its best registered (a resumed run then only reads the results back)."""
        if not self.state_file.is_file():
            return False
        if self.spec.register_best and not json.loads(self.state_file.read_text()).get("registered"):
            return False
        pairs = [(b, m) for b in self.spec.benchmarks for m in self.spec.methods]
        return all((self.pair_dir(b, m) / DONE_MARKER).is_file() for b, m in pairs)

    def _state(self) -> dict[str, Any]:
        state_file = self.state_file
        if self.resume:
            if not state_file.is_file():
                raise ConfigError(f"{self.spec_path}: nothing to resume (no sweep state at {self.root})")
            return json.loads(state_file.read_text())
        if state_file.is_file():
            previous = self.root.with_name(f"{self.root.name}-{int(time.time())}")
            self.root.rename(previous)  # keep the earlier sweep's Tune results, start afresh
        self.root.mkdir(parents=True, exist_ok=True)
        state = {"sweep_key": f"{self.spec.name}/{self.spec.fingerprint()}/{int(time.time())}"}
        write_text_atomic(state_file, json.dumps(state))
        return state

    def run(self) -> SweepOutcome:
        from vtrlab.cluster import connect

        started = time.perf_counter()
        uri = tracking_uri()
        check_tracking_server(uri)
        manifests = {
            b: check_data_readable(data_url(self.spec, b), b, str(self.spec_path)) for b in self.spec.benchmarks
        }
        connect(self.address, log_to_driver=not self.quiet)
        check_resources(self.spec, str(self.spec_path))
        state = self._state()  # only now: a refused sweep leaves no state behind
        mlflow = client(uri)
        commit = git_commit()
        parent_id, _ = find_or_create_run(
            mlflow,
            self.experiment,
            key=state["sweep_key"],
            run_name=f"sweep-{self.spec.name}",
            tags={TAG_KIND: "sweep", "sweep": self.spec.name, "git_commit": commit},
        )
        self._log_parent(mlflow, parent_id, manifests, commit)
        trials: list[TrialOutcome] = []
        for benchmark in self.spec.benchmarks:
            for method in self.spec.methods:
                trials.extend(self._run_pair(mlflow, uri, state, parent_id, benchmark, method))
        registrations = []
        if self.spec.register_best and not state.get("registered"):  # a resumed sweep registers once
            registrations = self._register(mlflow, trials)
            state["registered"] = True
            write_text_atomic(self.state_file, json.dumps(state))
        wall = time.perf_counter() - started
        mlflow.log_metric(parent_id, "sweep_wall_seconds", wall)
        mlflow.set_terminated(parent_id, status="FINISHED")
        return SweepOutcome(self.spec.name, parent_id, self.experiment, trials, registrations, wall)

    def _log_parent(self, mlflow, parent_id: str, manifests: dict[str, dict], commit: str) -> None:
        params = flatten_params(
            {
                "spec_file": str(self.spec_path),
                "spec_fingerprint": self.spec.fingerprint(),
                "git_commit": commit,
                "objective": self.spec.objective.metric,
                **{f"data_version.{b}": manifest.get("version", "?") for b, manifest in manifests.items()},
                **{f"version.{k}": v for k, v in package_versions().items()},
            }
        )
        log_params_once(mlflow, parent_id, params)
        mlflow.log_text(parent_id, self.spec_path.read_text(), f"spec/{self.spec_path.name}")

    def _run_pair(self, mlflow, uri: str, state, parent_id: str, benchmark: str, method: str) -> list[TrialOutcome]:
        from ray import tune
        from ray.tune.schedulers import ASHAScheduler

        pair_dir = self.pair_dir(benchmark, method)
        done = pair_dir / DONE_MARKER
        if done.is_file():
            return [TrialOutcome(**t) for t in json.loads(done.read_text())]
        plan = self.spec.methods[method]
        objective = self.spec.objective
        context = {
            "spec": self.spec.model_dump(mode="json", by_alias=True),
            "benchmark": benchmark,
            "method": method,
            "data": data_url(self.spec, benchmark),
            "tracking_uri": uri,
            "experiment": self.experiment,
            "parent_run_id": parent_id,
            "sweep_key": state["sweep_key"],
            "storage_path": self._checkpoint_storage(benchmark, method) or str(pair_dir / "train"),
            "marker_dir": str(pair_dir / "train"),
        }
        trainable = tune.with_resources(
            tune.with_parameters(run_trial, context=context), {"cpu": self.spec.budget.cpus_per_trial}
        )
        epochs = int(self.spec.methods[method].train.get("epochs", self.spec.train.get("epochs", 5)))
        scheduler = ASHAScheduler(
            metric=objective.metric,
            mode=objective.mode,
            time_attr="training_iteration",
            max_t=epochs + 1,  # ASHA stops trials that reach max_t: let finished trials end on their own
            grace_period=min(self.spec.budget.grace_period, max(epochs, 1)),
            reduction_factor=self.spec.budget.reduction_factor,
        )
        tune_name = "tune"
        if (pair_dir / tune_name).is_dir() and tune.Tuner.can_restore(str(pair_dir / tune_name)):
            tuner = tune.Tuner.restore(str(pair_dir / tune_name), trainable, resume_errored=True)
        else:
            search_alg = self._searcher(plan) if plan.search else None
            tuner = tune.Tuner(
                trainable,
                tune_config=tune.TuneConfig(
                    search_alg=search_alg,
                    scheduler=scheduler,
                    num_samples=self.spec.budget.trials if plan.search else 1,
                    max_concurrent_trials=self.spec.budget.max_concurrent,
                ),
                run_config=tune.RunConfig(name=tune_name, storage_path=str(pair_dir), verbose=1),
            )
        results = tuner.fit()
        outcomes = []
        for result in results:
            if result.metrics is None or objective.metric not in result.metrics:
                continue
            trial_id = result.metrics.get("trial_id")
            run = mlflow.search_runs(
                [mlflow.get_experiment_by_name(self.experiment).experiment_id],
                filter_string=f"tags.trial_id = '{trial_id}' and tags.`mlflow.parentRunId` = '{parent_id}'",
                max_results=1,
            )
            if not run:
                continue
            run_id = run[0].info.run_id
            completed = int(result.metrics.get("training_iteration", 0))
            stopped = completed < epochs and method != "zero-shot"
            if stopped:  # ASHA ended it: the trial actor was killed before it could close its run
                mlflow.set_tag(run_id, "asha_stopped", f"after epoch {completed}")
                mlflow.set_terminated(run_id, status="KILLED")
            else:
                self._finalise_run(mlflow, run_id, result.metrics.get("checkpoint_path"))
            metrics = {k: float(v) for k, v in result.metrics.items() if isinstance(v, (int, float))}
            outcomes.append(TrialOutcome(benchmark, method, run_id, metrics, completed, stopped, dict(result.config)))
        pair_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(done, json.dumps([o.__dict__ for o in outcomes], default=str))
        return outcomes

    def _checkpoint_storage(self, benchmark: str, method: str) -> str | None:
        """Where Ray Train writes this pair's checkpoints when the spec names object storage (Ray's own
        pyarrow filesystems handle s3://); None keeps them under the sweep's local directory."""
        if not self.spec.storage:
            return None
        return f"{self.spec.storage.rstrip('/')}/{self.root.name}/{benchmark}__{method}"

    @staticmethod
    def _finalise_run(mlflow, run_id: str, checkpoint_path: str | None) -> None:
        """Close a trial's run whose trial actor ended before it could (log the adapter once, FINISHED)."""
        if mlflow.get_run(run_id).info.status == "FINISHED":
            return
        if checkpoint_path and not mlflow.list_artifacts(run_id, "adapter"):
            from ray.train import Checkpoint

            from vtrlab.train.driver import log_final_artifact

            log_final_artifact(mlflow, run_id, Checkpoint(checkpoint_path))
        mlflow.set_terminated(run_id, status="FINISHED")

    def _searcher(self, plan):
        import optuna
        from ray.tune.search.optuna import OptunaSearch

        from vtrlab.sweep.space import DefineByRun

        objective = self.spec.objective
        if objective.second:
            metric, mode = [objective.metric, objective.second], [objective.mode, "min"]
        else:
            metric, mode = objective.metric, objective.mode
        if objective.sampler == "nsga2":
            sampler = optuna.samplers.NSGAIISampler(seed=0)
        else:
            sampler = optuna.samplers.TPESampler(multivariate=True, seed=0, n_startup_trials=2)
        return OptunaSearch(space=DefineByRun(plan), metric=metric, mode=mode, sampler=sampler)

    def _register(self, mlflow, trials: list[TrialOutcome]) -> list:
        from vtrlab.tracking.registry import register_adapter, registered_model_name

        objective = self.spec.objective
        sign = 1 if objective.mode == "max" else -1
        registrations = []
        for benchmark in self.spec.benchmarks:
            candidates = [t for t in trials if t.benchmark == benchmark and not t.stopped_early]
            candidates = [t for t in candidates if objective.metric in t.metrics]
            if not candidates:
                continue
            best = max(candidates, key=lambda t: sign * t.metrics[objective.metric])
            registrations.append(
                register_adapter(
                    mlflow,
                    registered_model_name(benchmark, self.spec.backbone),
                    best.run_id,
                    best.metrics,
                    objective.metric,
                    objective.mode,
                    tags={
                        "sweep": self.spec.name,
                        "method": best.method,
                        "benchmark": benchmark,
                        "backbone": self.spec.backbone,
                    },
                )
            )
        return registrations
