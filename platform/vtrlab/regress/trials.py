"""Training mode: every (entry, seed) of a suite is one Ray Train run; one Ray Tune grid search runs them all.

Each trial is a Tune function (as in `vtrlab sweep`) that fits a TorchTrainer with `TuneReportCallback`
and logs into its own MLflow child run of the regression run, tagged like a sweep trial plus `seed`,
`entry` and `regression=true`.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from vtrlab.regress.suite import Suite


def seed_run_key(run_key: str, entry_key: str, seed: int) -> str:
    """The `vtrlab.key` of one seed's run (a restarted trial logs into the same run)."""
    return f"{run_key}/{entry_key}/seed{seed}"


def run_seed(config: dict[str, Any], context: dict[str, Any]) -> None:
    """The Tune function of one (entry, seed): its TrainSpec, its MLflow child run, a TorchTrainer fit."""
    import ray.tune

    from vtrlab.regress.tracking import regression_tags
    from vtrlab.train.driver import run_tags
    from vtrlab.train.tuned import fit_tracked

    started_at = time.time()
    suite = Suite.model_validate(context["suite"])
    index, seed = context["runs"][config["run"]]
    entry = suite.entries[index]
    train = suite.train_spec(entry, seed)
    trial_id = ray.tune.get_context().get_trial_id()
    tags = {**run_tags(train, "trial"), **regression_tags(suite, entry=entry.key, seed=str(seed), trial_id=trial_id)}
    fit_tracked(
        train,
        tracking_uri=context["tracking_uri"],
        experiment=context["experiment"],
        key=seed_run_key(context["run_key"], entry.key, seed),
        run_name=f"{entry.key}-seed{seed}",
        tags=tags,
        parent_run_id=context["parent_run_id"],
        trainer_name=f"train-{trial_id}",
        storage_path=context["storage_path"],
        marker_dir=str(Path(context["marker_dir"]) / f"{entry.key}-seed{seed}"),
        started_at=started_at,
    )


def train_all(
    suite: Suite, context: dict[str, Any], work_dir: Path, verbose: bool
) -> tuple[dict[tuple[int, int], float], dict[tuple[int, int], str]]:
    """Fit every (entry index, seed) once. Returns ({(entry index, seed): the suite metric of the last epoch}
    for the trials that finished, {(entry index, seed): error} for those that did not)."""
    from ray import tune

    runs = {  # readable labels in Tune's progress table: "<entry>/seed<seed>"
        f"{entry.key}/seed{seed}": (index, seed)
        for index, entry in enumerate(suite.entries)
        for seed in suite.seeds_of(entry)
    }
    context = {**context, "runs": runs}
    trainable = tune.with_resources(tune.with_parameters(run_seed, context=context), {"cpu": suite.cpus_per_trial})
    tuner = tune.Tuner(
        trainable,
        param_space={"run": tune.grid_search(list(runs))},
        tune_config=tune.TuneConfig(max_concurrent_trials=suite.max_concurrent),
        run_config=tune.RunConfig(name="tune", storage_path=str(work_dir), verbose=1 if verbose else 0),
    )
    values: dict[tuple[int, int], float] = {}
    errors: dict[tuple[int, int], str] = {}
    for result in tuner.fit():
        where = runs[result.config["run"]]
        metrics = result.metrics or {}
        if result.error is None and suite.metric in metrics:
            values[where] = float(metrics[suite.metric])
        else:
            errors[where] = describe_error(result.error, result.path)
    return values, errors


def describe_error(error: BaseException | None, trial_dir: str | None) -> str:
    """One line about why a trial failed: the innermost cause's message, shortened, and where Tune kept
    the full traceback."""
    if error is None:
        return "the trial ended without reporting a result"
    while getattr(error, "cause", None) is not None:  # RayTaskError wraps what the trial raised
        error = error.cause
    text = " ".join(re.sub(r"\x1b\[[0-9;]*m", "", str(error)).split())
    text = text if len(text) <= 400 else text[:400] + " ..."
    return f"{type(error).__name__}: {text}" + (f" (traceback: {trial_dir}/error.txt)" if trial_dir else "")
