"""`--champions-only`: evaluate each benchmark's registry champion on that benchmark's eval split, as a Ray
task per benchmark (so it runs on a cluster's GPU workers as well as on a laptop)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vtrlab.regress.suite import Suite


@dataclass(frozen=True)
class EvalPlan:
    """How one champion is evaluated: the pinned registry version and the eval settings its artifact records."""

    benchmark: str
    reference: str  # MODEL/VERSION: the version found before anything ran, even if the alias moves meanwhile
    data: str
    split: str
    batch_size: int
    num_frames: int
    max_words: int
    allow_missing: bool = False  # the suite's training field: a gallery short of the card is evaluated


def eval_plan(suite: Suite, benchmark: str, version, tracking_uri: str) -> EvalPlan:
    """The champion's eval split, frames, words and batch size as its artifact records them
    (`vtrlab.model.artifacts.evaluation_settings`), so the evaluation repeats the one behind its metric."""
    from vtrlab.errors import ArtifactError
    from vtrlab.model.adapter_config import evaluation_settings

    settings = evaluation_settings(recorded_config(version, tracking_uri))
    if settings.benchmark != benchmark:
        raise ArtifactError(
            f"{version.model} version {version.version}: its artifact was evaluated on benchmark "
            f"{settings.benchmark!r} (key evaluation.benchmark), but it is the champion of {benchmark!r}"
        )
    return EvalPlan(
        benchmark=benchmark,
        reference=version.reference,
        data=suite.data_url(benchmark),
        split=settings.split,
        batch_size=settings.batch_size,
        num_frames=settings.num_frames,
        max_words=settings.max_words,
        allow_missing=bool(suite.train.get("allow_missing", False)),
    )


def recorded_config(version, tracking_uri: str):
    """The validated `adapter_config.json` of a registered version (a plain adapter artifact or vtrlab's
    logged model around one)."""
    import tempfile

    from vtrlab.errors import ArtifactError
    from vtrlab.hub.pull import adapter_dir
    from vtrlab.model.adapter_config import CONFIG_NAME, cut, parse_adapter_config
    from vtrlab.tracking.client import Tracker

    origin = f"{version.model} version {version.version} ({version.source.rstrip('/')}/{CONFIG_NAME})"
    with tempfile.TemporaryDirectory() as directory:
        try:
            local = adapter_dir(Tracker(tracking_uri).download_uri(version.source, directory), origin)
            text = (local / CONFIG_NAME).read_bytes()
        except Exception as err:  # OSError, ArtifactError and the store's own download errors alike
            raise ArtifactError(f"{origin}: cannot read the adapter config ({cut(str(err))})") from err
    return parse_adapter_config(text, origin)


def evaluate_champion(plan: EvalPlan, weights: str | None, tracking_uri: str, use_gpu: bool) -> dict[str, Any]:
    """Load the champion (`vtrlab.load`) and evaluate it on its benchmark's eval split: its metrics with the
    recalls' bootstrap intervals, and its per-query ranks as JSON under `ranks`; the body of the task."""
    from dataclasses import replace

    import torch

    import vtrlab
    from vtrlab.data import make_eval_loader
    from vtrlab.data.gallery import eval_gallery
    from vtrlab.train.evaluate import evaluate_queries

    device = "cuda" if use_gpu and torch.cuda.is_available() else "cpu"
    encoder = vtrlab.load(plan.reference, weights=weights, tracking_uri=tracking_uri, device=device)
    loader = make_eval_loader(
        plan.data, plan.split, batch_size=plan.batch_size, num_frames=plan.num_frames, max_words=plan.max_words
    )
    gallery = eval_gallery(loader.dataset.manifest, plan.split, plan.data, allow_missing=plan.allow_missing)
    metrics, ranks = evaluate_queries(encoder, loader, device, gallery, plan.max_words)
    ranks = replace(ranks, benchmark=plan.benchmark, split=plan.split)
    return {**metrics, **ranks.interval_metrics(), "ranks": ranks.to_json()}


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
            from vtrlab.train.tracked import one_line

            results[benchmark] = {"error": one_line(err)}  # the task's own error, not Ray's wrapper, bounded
    return results
