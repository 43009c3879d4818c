"""Comparison plots (matplotlib): R@1 against trainable parameters with the Pareto front, and
learning curves. One panel per benchmark; one colour per method throughout."""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure  # the object API: no pyplot state, no GUI backend
from matplotlib.ticker import MaxNLocator

from vtrlab.report.collect import TrialRecord
from vtrlab.report.table import ComparisonRow

METHOD_COLOURS = {
    "zero-shot": "#7f7f7f",
    "full": "#d62728",
    "bottleneck": "#ff7f0e",
    "lora": "#9467bd",
    "mv-adapter": "#1f77b4",
    "rap": "#2ca02c",
}


def colour(method: str) -> str:
    return METHOD_COLOURS.get(method, "#8c564b")


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points no other point beats on both axes (fewer parameters, higher R@1), sorted by parameters."""
    front: list[tuple[float, float]] = []
    for x, y in sorted(points, key=lambda p: (p[0], -p[1])):
        if not front or y > front[-1][1]:
            front.append((x, y))
    return front


def _panels(benchmarks: list[str], height: float = 4.0):
    fig = Figure(figsize=(5.5 * len(benchmarks), height))
    axes = fig.subplots(1, len(benchmarks), squeeze=False)
    return fig, dict(zip(benchmarks, axes[0], strict=True))


def pareto_plot(trials: list[TrialRecord], references: list[ComparisonRow], path: Path, metric: str = "t2v_R1") -> Path:
    """A point per trial (R@1 against trainable parameters), the front drawn through the best ones; the
    papers' reported results with a known parameter count as hollow diamonds."""
    benchmarks = sorted({t.benchmark for t in trials})
    fig, axes = _panels(benchmarks)
    for benchmark, ax in axes.items():
        mine = [t for t in trials if t.benchmark == benchmark and metric in t.metrics]
        for method in sorted({t.method for t in mine}):
            pts = [t for t in mine if t.method == method]
            ax.scatter(
                [t.metrics.get("trainable_params", 0) for t in pts],
                [t.metrics[metric] for t in pts],
                color=colour(method),
                label=method,
                alpha=0.85,
                edgecolors="black",
                linewidths=0.4,
            )
        front = pareto_front([(t.metrics.get("trainable_params", 0), t.metrics[metric]) for t in mine])
        if front:
            ax.step(*zip(*front, strict=True), where="post", color="black", lw=1.2, ls="--", label="Pareto front")
            ax.scatter(*zip(*front, strict=True), s=140, facecolors="none", edgecolors="black", linewidths=1.2)
        for ref in references:
            if ref.benchmark == benchmark and ref.trainable_params and metric in ref.metrics:
                ax.scatter(ref.trainable_params, ref.metrics[metric], marker="D", facecolors="none",
                           edgecolors=colour(ref.method), label=f"{ref.method} (reported)")  # fmt: skip
        ax.set_xscale("symlog", linthresh=1e4)  # zero-shot trains nothing: x = 0
        ax.set_xlabel("trainable parameters")
        ax.set_ylabel(metric.replace("_", " "))
        ax.set_title(f"{benchmark}: {len(mine)} trials")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def learning_curves(trials: list[TrialRecord], path: Path) -> Path:
    """Per benchmark: every trial's T2V R@1 by epoch (dashed: stopped by ASHA), and its training loss."""
    benchmarks = sorted({t.benchmark for t in trials})
    fig = Figure(figsize=(5.5 * len(benchmarks), 7))
    axes = fig.subplots(2, len(benchmarks), squeeze=False, sharex="col")
    for column, benchmark in enumerate(benchmarks):
        top, bottom = axes[0][column], axes[1][column]
        seen: set[str] = set()
        for trial in (t for t in trials if t.benchmark == benchmark):
            if trial.method == "zero-shot" and trial.history.get("t2v_R1"):  # evaluated once, trains nothing
                top.axhline(trial.history["t2v_R1"][-1][1], color=colour("zero-shot"), ls=":", label="zero-shot")
                continue
            style = {"color": colour(trial.method), "ls": "--" if trial.stopped_early else "-", "marker": "o", "ms": 3}
            label = None if trial.method in seen else trial.method
            seen.add(trial.method)
            r1 = trial.history.get("t2v_R1", [])
            if r1:
                top.plot([s + 1 for s, _ in r1], [v for _, v in r1], label=label, **style)
            loss = [(s, v) for s, v in trial.history.get("train_loss", []) if v == v]
            if loss:
                bottom.plot([s + 1 for s, _ in loss], [v for _, v in loss], **style)
        top.set_title(f"{benchmark}: T2V R@1 by epoch")
        top.set_ylabel("T2V R@1")
        bottom.set_ylabel("training loss")
        bottom.set_xlabel("epoch (dashed: stopped by ASHA; dotted: zero-shot)")
        bottom.xaxis.set_major_locator(MaxNLocator(integer=True))
        for ax in (top, bottom):
            ax.grid(alpha=0.3)
        top.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path
