"""Can the synthetic benchmark tell the methods apart? Per method: T2V R@1 with its 95% bootstrap interval over
the test queries, and the seconds its training + evaluation took, all in this process (no Ray).

It synthesises the benchmark at ``--size`` (or reads ``--data``), pretrains vtr-tiny on its image set (or
reads ``--weights``), then trains every method with the quickstart sweep's recipe (``sweeps/quickstart.yaml``:
each method's fixed knobs and learning rate, the shared train fields) and evaluates it on the test split.
The paired bootstrap compares MV-Adapter with every other method on the same queries.

    PYTHONPATH=platform .venv/bin/python bench/synthetic_margin.py --size demo --threads 1

With ``--home``, it trains nothing: it re-evaluates every trial adapter a finished `vtrlab quickstart` logged
under that home (and zero-shot on its backbone) and prints the same figures for the demo's own trials.

    PYTHONPATH=platform .venv/bin/python bench/synthetic_margin.py --home ~/.vtrlab
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
import yaml

from vtrlab.data.synth import synth
from vtrlab.model.factory import create_model
from vtrlab.train.bootstrap import paired_difference, recall_interval
from vtrlab.train.local import recipe_test_ranks, split_ranks
from vtrlab.train.pretrain import pretrain_backbone

SPEC = Path(__file__).resolve().parents[1] / "sweeps" / "quickstart.yaml"


def run_method(name: str, method: dict, train: dict, data: str, weights: str, seed: int) -> tuple[torch.Tensor, float]:
    """Train `name` with its recipe (none for zero-shot) and return its test ranks and the seconds it took."""
    started = time.perf_counter()
    ranks = recipe_test_ranks(name, method, train, data, weights, seed)
    return ranks, time.perf_counter() - started


def quickstart_ranks(home: Path) -> dict[str, torch.Tensor]:
    """Per method, the test ranks of its best trial (by T2V R@1) among the adapters a quickstart logged."""
    from vtrlab.model.adapter_config import evaluation_settings, read_adapter_config
    from vtrlab.model.artifacts import load_adapter

    best: dict[str, torch.Tensor] = {}
    weights, data = None, str(home / "data" / "synthetic")
    for directory in sorted((home / "mlartifacts" / "sweep-quickstart").glob("*/artifacts/adapter")):
        config = read_adapter_config(directory)
        weights = config.backbone.weights
        ev = evaluation_settings(config)
        ranks = split_ranks(load_adapter(directory), data, ev.split, ev.num_frames, ev.max_words)
        if config.method not in best or (ranks == 1).sum() > (best[config.method] == 1).sum():
            best[config.method] = ranks
    if weights is not None and "zero-shot" not in best:
        best["zero-shot"] = split_ranks(create_model("zero-shot", "vtr-tiny", weights), data, "test", ev.num_frames, 32)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="demo", help="synthetic size to write when --data is not given")
    parser.add_argument("--data", help="an existing synthetic benchmark (skips synthesis)")
    parser.add_argument("--weights", help="an existing pretrained vtr-tiny (skips pretraining)")
    parser.add_argument("--spec", default=str(SPEC), help="the sweep whose methods and recipes to run")
    parser.add_argument("--methods", nargs="*", help="methods to run (default: every method of the spec)")
    parser.add_argument("--epochs", type=int, help="override the spec's epochs")
    parser.add_argument("--lr", action="append", default=[], help="METHOD=LR overrides, repeatable")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--home", type=Path, help="a finished quickstart's VTRLAB_HOME: evaluate its trials")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.home:
        ranks = quickstart_ranks(args.home)
        for name, r in sorted(ranks.items(), key=lambda kv: -float((kv[1] == 1).sum())):
            print(f"{name:12s} T2V R@1 {recall_interval(r, 1)}")
        compare(ranks)
        return
    spec = yaml.safe_load(Path(args.spec).read_text())
    train = dict(spec["train"])
    if args.epochs:
        train["epochs"] = args.epochs
    methods: dict[str, dict] = spec["methods"]
    for item in args.lr:
        name, _, value = item.partition("=")
        methods[name] = {**methods[name], "train": {**(methods[name].get("train") or {}), "lr": float(value)}}
    work = Path(tempfile.mkdtemp(prefix="vtr-margin-"))
    started = time.perf_counter()
    data = args.data
    if data is None:
        data = str(work / "data")
        synth(data, size=args.size, seed=0)
    print(f"data {data} ({time.perf_counter() - started:.0f} s)", flush=True)
    weights = args.weights
    if weights is None:
        started = time.perf_counter()
        weights = str(pretrain_backbone(data, work / "vtr-tiny.safetensors", show_progress=False))
        print(f"weights {weights} ({time.perf_counter() - started:.0f} s)", flush=True)
    ranks: dict[str, torch.Tensor] = {}
    for name in args.methods or list(methods):
        ranks[name], seconds = run_method(name, methods[name], train, data, weights, args.seed)
        print(f"{name:12s} T2V R@1 {recall_interval(ranks[name], 1)}  ({seconds:.0f} s)", flush=True)
    compare(ranks)


def compare(ranks: dict[str, torch.Tensor]) -> None:
    """MV-Adapter minus every other method on the same queries (paired bootstrap, 95%)."""
    if "mv-adapter" in ranks:
        for name, other in ranks.items():
            if name != "mv-adapter":
                diff = paired_difference(ranks["mv-adapter"], other, 1)
                print(f"mv-adapter - {name}: {diff.difference:+.1f} [{diff.low:+.1f}, {diff.high:+.1f}]")


if __name__ == "__main__":
    main()
