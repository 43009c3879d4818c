"""`--champions-only`: evaluate each benchmark's registry champion on that benchmark's eval split, as a Ray
task per benchmark (so it runs on a cluster's GPU workers as well as on a laptop)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vtrlab.regress.suite import Suite


@dataclass(frozen=True)
class EvalPlan:
    """How one champion is evaluated: the pinned registry version and the eval settings of its training run."""

    benchmark: str
    reference: str  # MODEL/VERSION: the version found before anything ran, even if the alias moves meanwhile
    data: str
    split: str
    batch_size: int
    num_frames: int
    max_words: int


def eval_plan(suite: Suite, benchmark: str, version, run_params: dict[str, str]) -> EvalPlan:
    """The champion's eval split, frames, words and eval batch size as its training run recorded them (so
    the evaluation repeats the one behind the recorded metric), else the benchmark card's defaults."""
    from vtrlab.data.card import load_card

    card = load_card(benchmark)
    return EvalPlan(
        benchmark=benchmark,
        reference=version.reference,
        data=suite.data_url(benchmark),
        split=run_params.get("eval_split") or card.eval_split,
        batch_size=int(run_params.get("eval_batch_size") or suite.train.get("eval_batch_size", 64)),
        num_frames=int(run_params.get("num_frames") or card.num_frames),
        max_words=int(run_params.get("max_words") or card.max_words),
    )


def evaluate_champion(plan: EvalPlan, weights: str | None, tracking_uri: str, use_gpu: bool) -> dict[str, float]:
    """Load the champion (`vtrlab.load`) and evaluate it on its benchmark's eval split; the body of the task."""
    import torch

    import vtrlab
    from vtrlab.data import make_eval_loader
    from vtrlab.train.evaluate import evaluate

    device = "cuda" if use_gpu and torch.cuda.is_available() else "cpu"
    encoder = vtrlab.load(plan.reference, weights=weights, tracking_uri=tracking_uri, device=device)
    loader = make_eval_loader(
        plan.data, plan.split, batch_size=plan.batch_size, num_frames=plan.num_frames, max_words=plan.max_words
    )
    return evaluate(encoder, loader, device)


def evaluate_all(suite: Suite, plans: list[EvalPlan], tracking_uri: str) -> dict[str, dict[str, Any]]:
    """Run one evaluation task per plan at once; {benchmark: metrics} or {benchmark: {"error": message}}."""
    import ray

    gpus = 1 if float(suite.train.get("gpus_per_worker", 0) or 0) > 0 else 0
    task = ray.remote(evaluate_champion).options(num_cpus=1, num_gpus=gpus, max_retries=1)
    pending = {plan.benchmark: task.remote(plan, suite.weights, tracking_uri, gpus > 0) for plan in plans}
    results: dict[str, dict[str, Any]] = {}
    for benchmark, ref in pending.items():
        try:
            results[benchmark] = ray.get(ref)
        except Exception as err:  # a failed evaluation is that entry's verdict, not the end of the run
            cause = getattr(err, "cause", None) or err
            results[benchmark] = {"error": f"{type(cause).__name__}: {cause}"}
    return results
