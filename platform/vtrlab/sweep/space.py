"""A method's search space as an Optuna define-by-run function, and trial params -> TrainSpec."""

from __future__ import annotations

from typing import Any

from vtrlab.config import TrainSpec
from vtrlab.sweep.spec import TRAIN_FIELDS, MethodPlan, Range, SweepSpec


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
    """Optuna define-by-run space for one method (each method has its own Tuner, so the space is that
    method's knobs; conditioning on the method is the choice of Tuner). A class, not a closure, because
    Tune pickles the searcher into its experiment state for `--resume`."""

    def __init__(self, plan: MethodPlan):
        self.search = dict(plan.search)

    def __call__(self, trial) -> None:
        for name, dimension in self.search.items():
            suggest(trial, name, dimension)


def trial_spec(sweep: SweepSpec, benchmark: str, method: str, sampled: dict[str, Any], data: str) -> TrainSpec:
    """The TrainSpec of one trial: sweep-wide training fields, the method's fixed ones, then sampled values
    (knobs go to `knobs`, everything else to the TrainSpec field of that name)."""
    plan = sweep.methods[method]
    knobs = dict(plan.knobs)
    fields: dict[str, Any] = {**sweep.train, **plan.train}
    for name, value in sampled.items():
        if name in TRAIN_FIELDS and name not in _knob_names(method):
            fields[name] = value
        else:
            knobs[name] = value
    return TrainSpec(
        benchmark=benchmark,
        method=method,
        knobs=knobs,
        backbone=sweep.backbone,
        weights=sweep.weights,
        data=data,
        **fields,
    ).resolved()


def _knob_names(method: str) -> set[str]:
    from vtrlab.model.methods import get_method

    return set(get_method(method).knobs.model_fields)
