"""Baselines and verdicts: the registry champion's recorded value, the suite's previous run, and whether an
entry's mean over seeds fell below a comparable baseline by more than its tolerance allows *and* by more than
chance explains (the paired bootstrap over the same queries, `vtrlab.regress.paired`, where the runs kept
their per-query ranks and the metric is a recall; the tolerance alone otherwise)."""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from vtrlab.regress.verdicts import FAILED, NO_BASELINE, PASS, REGRESSION
from vtrlab.tracking.records import TAG_KIND, RunRecord, VersionRecord

if TYPE_CHECKING:
    from vtrlab.tracking.client import Tracker

TAG_MODE = "regression.mode"  # train | champions-only
EPSILON = 1e-9  # metrics are logged as floats: 14.0625 - 0.0 must not count as below 14.0625


@dataclass
class Baseline:
    """A value to compare with: `comparable` False means it is shown for reference only (`note` says why)."""

    kind: str  # champion | previous
    value: float | None
    comparable: bool
    label: str
    note: str = ""
    run_id: str | None = None
    short: str = ""  # for table cells
    test: dict[str, Any] | None = None  # entry minus this baseline, paired over queries (PairedDifference.to_dict)


@dataclass
class EntryResult:
    """One suite entry (or, with --champions-only, one benchmark's champion): its values per seed and verdict."""

    key: str
    benchmark: str
    method: str
    fingerprint: str
    seeds: list[int | str]  # "eval" for a champion's evaluation
    values: list[float | None]
    run_ids: list[str | None]
    allowed_drop: float = 0.0
    champion: Baseline | None = None
    previous: Baseline | None = None
    verdict: str = NO_BASELINE
    reason: str = ""
    interval: dict[str, Any] | None = None  # the mean's 95% bootstrap interval over queries (Interval.to_dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def finished(self) -> list[float]:
        return [v for v in self.values if v is not None]

    @property
    def failed(self) -> bool:
        return len(self.finished) < len(self.values)

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.finished) if self.finished else None

    @property
    def std(self) -> float:
        """Sample standard deviation over seeds (0 for a single value)."""
        return statistics.stdev(self.finished) if len(self.finished) > 1 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "mean": self.mean, "std": self.std}


def _difference(test: dict[str, Any]) -> str:
    interval = f"[{test['low']:+.2f}, {test['high']:+.2f}]"
    return f"paired difference {test['difference']:+.2f} {interval}, p={test['p_value']:.3f}"


def _compared(mean: float, baseline: Baseline, drop: float) -> tuple[bool, str]:
    """(whether the entry regressed against `baseline`, why in words)."""
    below = mean < baseline.value - drop - EPSILON
    sign = "<" if below else ">="
    text = f"mean {mean:.2f} {sign} {baseline.kind} {baseline.value:.2f} - {drop:.2f}"
    if baseline.test is None:
        return below, text + (" (no per-query ranks: tolerance only)" if below else "")
    lower = baseline.test["significant"] and baseline.test["difference"] < 0
    if below and not lower:
        return False, f"{text}, but within chance ({_difference(baseline.test)})"
    return below, f"{text} ({_difference(baseline.test)})"


def judge(result: EntryResult) -> EntryResult:
    """Set `verdict` and `reason`: failed (a seed did not finish), regression (mean below a comparable baseline
    minus the allowed drop, and significantly below it where the paired test applies), pass, or no baseline
    (nothing comparable)."""
    if result.failed:
        missing = [s for s, v in zip(result.seeds, result.values, strict=True) if v is None]
        error = result.extra.get("error")
        result.verdict = FAILED
        result.reason = f"seed(s) {missing} did not finish" + (f": {error}" if error else "")
        return result
    mean = result.mean
    comparable = [b for b in (result.champion, result.previous) if b and b.comparable and b.value is not None]
    if not comparable:
        result.verdict, result.reason = NO_BASELINE, "no comparable baseline"
        return result
    judged = [_compared(mean, b, result.allowed_drop) for b in comparable]
    regressed = [why for below, why in judged if below]
    result.verdict = REGRESSION if regressed else PASS
    result.reason = "; ".join(regressed or [why for _, why in judged])
    return result


def champion_baseline(version: VersionRecord, metric: str, method: str | None) -> Baseline:
    """The champion version's recorded `metric.<metric>` tag; comparable when its `method` tag is `method`
    (None: always, e.g. when the champion itself is evaluated)."""
    recorded = version.tags.get(f"metric.{metric}")
    champion_method = version.tags.get("method", "?")
    label = f"{version.model} v{version.version} ({champion_method})"
    short = f"v{version.version}, {champion_method}"
    if recorded is None:
        return Baseline("champion", None, False, label, note=f"champion has no recorded {metric}", short=short)
    comparable = method is None or champion_method == method
    note = "" if comparable else f"champion is {champion_method}, entry is {method}: reference only"
    return Baseline("champion", float(recorded), comparable, label, note, version.run_id, short)


def earlier_runs(tracker: Tracker, experiment: str, mode: str, before_ms: int) -> list[RunRecord]:
    """Finished regression runs of `experiment` in `mode` that started before `before_ms`, newest first."""
    found = tracker.experiment(experiment)
    if found is None:
        return []
    runs = tracker.search_runs(
        [found.experiment_id],
        f"tags.`{TAG_KIND}` = 'regression' and tags.`{TAG_MODE}` = '{mode}' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        limit=200,
    )
    return [run for run in runs if run.start_ms < before_ms]


def previous_baseline(runs: list[RunRecord], key: str, metric: str, fingerprint: str) -> Baseline | None:
    """The newest of `runs` that measured entry `key` with the same fingerprint (what it trains), if any."""
    for run in runs:
        if run.params.get(f"entry.{key}.fingerprint") != fingerprint:
            continue
        value = run.metrics.get(f"{key}.{metric}_mean")
        if value is None:
            continue
        started = datetime.fromtimestamp(run.start_ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")
        label = f"run {run.run_id} ({started})"
        return Baseline("previous", float(value), True, label, run_id=run.run_id, short=f"run {run.run_id[:8]}")
    return None
