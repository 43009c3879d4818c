"""`vtrlab reproduce --paper mv-adapter --benchmark msrvtt`: the paper's protocol for one benchmark, run
over the paper's seeds, beside the paper's reported table row.

The protocol comes from a sweep spec (default `sweeps/paper.yaml`): the method's fixed knobs and training
fields with the benchmark's overrides (frames, words, epochs, batch, recipe), nothing searched, and the
spec's `seeds` (0, 42, 123 for the papers). Each seed is one tracked Ray Train run (the regression's Tune
grid); the result is, per metric, the mean over seeds with its 95% interval (Student's t over seeds), the
paper's value, and whether the paper's value lies outside that interval.
"""

from __future__ import annotations

import statistics
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from vtrlab.errors import ConfigError, RunsFailedError
from vtrlab.paths import vtrlab_home

PAPER_SPEC = Path(__file__).resolve().parents[2] / "sweeps" / "paper.yaml"
PAPERS = {"mv-adapter": "MV-Adapter", "rap": "RAP"}  # --paper -> the source its reference rows name
METRICS = ("t2v_R1", "t2v_R5", "t2v_R10", "v2t_R1", "v2t_R5", "v2t_R10")


@dataclass(frozen=True)
class ReproducedMetric:
    metric: str
    values: list[float]  # one per seed
    mean: float
    low: float
    high: float
    reported: float | None

    @property
    def outside(self) -> bool | None:
        """Whether the paper's value lies outside the measured interval (None: the paper reports none)."""
        if self.reported is None:
            return None
        return not self.low <= self.reported <= self.high


@dataclass(frozen=True)
class Reproduction:
    paper: str
    benchmark: str
    method: str
    spec: str
    seeds: list[int]
    run_ids: list[str]
    reference: str | None  # the reported row's source and backbone
    metrics: list[ReproducedMetric]
    experiment: str
    parent_run_id: str
    wall_seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "metrics": [{**asdict(m), "outside": m.outside} for m in self.metrics]}


def seed_interval(values: list[float], level: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): Student's t interval of the mean over seeds (a point for one seed)."""
    from scipy.stats import t

    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, mean, mean
    half = t.ppf(0.5 + level / 2, len(values) - 1) * statistics.stdev(values) / len(values) ** 0.5
    return mean, mean - half, mean + half


def reported_row(paper: str, method: str, benchmark: str):
    """The paper's own reported row for `method` on `benchmark`, or None."""
    from vtrlab.report.references import references_for

    for row in references_for({benchmark}):
        if row.method == method and row.source.startswith(PAPERS[paper]):
            return row
    return None


def reproduce(
    paper: str,
    benchmark: str,
    spec_path: str | Path = PAPER_SPEC,
    address: str | None = None,
    verbose: bool = False,
    say=print,
) -> Reproduction:
    """Run the paper's protocol for `benchmark` over the spec's seeds and set it beside the paper's row."""
    from vtrlab.cluster import connect
    from vtrlab.regress.suite import Entry, Suite, Tolerance
    from vtrlab.regress.trials import SeedTrials, train_all
    from vtrlab.sweep.spec import load_sweep_spec
    from vtrlab.tracking.client import Tracker
    from vtrlab.tracking.lifecycle import Heartbeat
    from vtrlab.tracking.provenance import provenance_params
    from vtrlab.tracking.records import TAG_KIND, RunState
    from vtrlab.tracking.store import check_tracking_server, tracking_uri
    from vtrlab.train.preflight import check_cluster_fits, check_data_readable, check_eval_gallery, trial_shape

    if paper not in PAPERS:
        raise ConfigError(f"--paper {paper!r}: expected one of {', '.join(PAPERS)}")
    source = str(spec_path)
    spec = load_sweep_spec(spec_path)
    if paper not in spec.methods:
        raise ConfigError(f"{source}: methods: the spec has no {paper} method to reproduce")
    if benchmark not in spec.benchmarks:
        raise ConfigError(f"{source}: benchmarks: {benchmark!r} is not one of {', '.join(spec.benchmarks)}")
    plan = spec.methods[paper]
    knobs, fields = spec.layered(benchmark, paper, plan.knobs, plan.train)
    fields.pop("seed", None)
    suite = Suite(
        name=f"reproduce-{paper}-{benchmark}",
        backbone=spec.backbone,
        weights=spec.weights,
        data={benchmark: spec.data_url(benchmark)},
        storage=spec.storage,
        train=fields,
        seeds=spec.seeds,
        tolerance=Tolerance(max_r1_drop=0.0),  # nothing is judged: a reproduction has no baseline
        budget=spec.budget.model_dump(include={"max_concurrent", "cpus_per_trial", "trial_retries", "driver_resource"}),
        entries=[Entry(benchmark=benchmark, method=paper, knobs=knobs)],
    )
    uri = tracking_uri()
    check_tracking_server(uri)
    train = suite.train_spec_of(suite.entries[0], spec.seeds[0])
    manifest = check_data_readable(train.data, benchmark, source, [train.train_split, train.eval_split])
    check_eval_gallery(manifest, train.data, train.eval_split, train.allow_missing, source)
    say(f"Ray: {connect(address, log_to_driver=verbose)}")
    check_cluster_fits(
        trial_shape(train, suite.budget.cpus_per_trial, suite.budget.driver_resource),
        source,
        suite.budget.trial_keys("train"),
    )
    started = time.perf_counter()
    tracker = Tracker(uri)
    experiment = f"reproduce-{paper}"
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    key = f"reproduce/{paper}/{benchmark}/{stamp}/{uuid.uuid4().hex[:8]}"
    parent, _ = tracker.find_or_create_run(
        experiment,
        key,
        f"{paper}-{benchmark}-{stamp}",
        {TAG_KIND: "reproduce", "method": paper, "benchmark": benchmark},
    )
    tracker.log_params(parent.run_id, provenance_params(source, spec.fingerprint(), {benchmark: manifest}))
    factory = SeedTrials(
        suite=suite.model_dump(mode="json"), run_key=key, parent_run_id=parent.run_id, experiment=experiment
    )
    root = str(vtrlab_home() / "reproduce" / paper / benchmark / stamp)
    if spec.storage:
        root = f"{spec.storage.rstrip('/')}/reproduce/{paper}/{benchmark}/{stamp}"
    say(f"reproducing {PAPERS[paper]} on {benchmark}: {len(spec.seeds)} seeds {spec.seeds} ({source})")
    try:
        with Heartbeat(tracker, parent.run_id):
            outcomes = train_all(suite, factory, root, uri, verbose, say)
    except BaseException as err:
        from vtrlab.train.tracked import one_line

        tracker.end_run(
            parent.run_id, RunState.FAILED, error=one_line(err) if isinstance(err, Exception) else "interrupted"
        )
        raise
    finished = [
        outcomes[(0, seed)]
        for seed in spec.seeds
        if outcomes.get((0, seed)) and outcomes[(0, seed)].state == RunState.FINISHED
    ]
    if not finished:
        errors = "; ".join(o.error or "failed" for o in outcomes.values())
        tracker.end_run(parent.run_id, RunState.FAILED, error=errors)
        raise RunsFailedError(f"reproduce {paper} on {benchmark}: every seed failed ({errors})")
    row = reported_row(paper, paper, benchmark)
    metrics = []
    for metric in METRICS:
        values = [o.metrics[metric] for o in finished]
        mean, low, high = seed_interval(values)
        reported = row.metrics().get(metric) if row is not None else None
        metrics.append(ReproducedMetric(metric, values, mean, low, high, reported))
    summary = {f"{m.metric}_{part}": getattr(m, part) for m in metrics for part in ("mean", "low", "high")}
    tracker.log_metrics(parent.run_id, {**summary, "seeds_finished": len(finished)})
    tracker.end_run(parent.run_id, RunState.FINISHED)
    return Reproduction(
        paper=paper,
        benchmark=benchmark,
        method=paper,
        spec=source,
        seeds=[seed for seed in spec.seeds if outcomes.get((0, seed)) in finished],
        run_ids=[o.run_id for o in finished],
        reference=f"{row.source}, {row.backbone}" if row is not None else None,
        metrics=metrics,
        experiment=experiment,
        parent_run_id=parent.run_id,
        wall_seconds=time.perf_counter() - started,
    )
