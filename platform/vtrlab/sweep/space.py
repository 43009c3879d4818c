"""A method's search space as an Optuna define-by-run function, and the searcher of a sweep."""

from __future__ import annotations

from typing import Any

from vtrlab.sweep.spec import MethodPlan, Objective, Range


def suggest(trial, name: str, dimension: Range) -> Any:
    """Ask an Optuna trial for one value of `dimension`."""
    if dimension.choice is not None:
        return trial.suggest_categorical(name, dimension.choice)
    if dimension.int_ is not None:
        low, high = dimension.int_
        return trial.suggest_int(name, low, high, step=int(dimension.step or 1), log=dimension.log)
    low, high = dimension.float_
    return trial.suggest_float(name, low, high, step=dimension.step, log=dimension.log)


class DefineByRun:
    """Optuna define-by-run space for one method (each method has its own Tune experiment, so the space is
    that method's knobs; conditioning on the method is the choice of experiment). A class, not a closure,
    because Tune pickles the searcher into its experiment state for `--resume`."""

    def __init__(self, plan: MethodPlan):
        self.search = dict(plan.search)

    def __call__(self, trial) -> None:
        for name, dimension in self.search.items():
            suggest(trial, name, dimension)


def searcher(plan: MethodPlan, objective: Objective):
    """OptunaSearch over the plan's space: multivariate TPE, or NSGA-II for a Pareto objective."""
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # its "A new study created" lines: our progress says it

    if objective.second:
        metric, mode = [objective.metric, objective.second], [objective.mode, "min"]
    else:
        metric, mode = objective.metric, objective.mode
    if objective.sampler == "nsga2":
        sampler = optuna.samplers.NSGAIISampler(seed=0)
    else:
        sampler = optuna.samplers.TPESampler(multivariate=True, seed=0, n_startup_trials=2)
    return OptunaSearch(space=DefineByRun(plan), metric=metric, mode=mode, sampler=sampler)
