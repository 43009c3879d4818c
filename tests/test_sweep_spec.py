"""Sweep specs: the shipped ones validate; bad ones stop before anything starts, naming file and key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from vtrlab.errors import ConfigError
from vtrlab.sweep.spec import load_sweep_spec, trial_spec

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "sweeps" / "quickstart.yaml"
PAPER = ROOT / "sweeps" / "paper.yaml"
# The papers' protocol: (epochs, global batch, frames, words) per benchmark.
PROTOCOL = {
    "msrvtt": (5, 128, 12, 32),
    "msvd": (5, 128, 12, 32),
    "lsmdc": (5, 128, 12, 32),
    "didemo": (15, 64, 32, 64),
    "activitynet": (15, 64, 32, 64),
}


@pytest.mark.parametrize("name", ["quickstart.yaml", "paper.yaml"])
def test_shipped_specs_are_valid(name):
    spec = load_sweep_spec(ROOT / "sweeps" / name)
    assert spec.methods and spec.benchmarks


def test_paper_spec_covers_five_benchmarks_and_six_methods():
    spec = load_sweep_spec(ROOT / "sweeps" / "paper.yaml")
    assert set(spec.benchmarks) == {"msrvtt", "msvd", "lsmdc", "didemo", "activitynet"}
    assert set(spec.methods) == {"zero-shot", "full", "bottleneck", "lora", "mv-adapter", "rap"}


@pytest.mark.parametrize("benchmark", sorted(PROTOCOL))
def test_paper_trials_run_the_papers_protocol(benchmark):
    from vtrlab.model.methods.mv_adapter import PAPER_SETTINGS

    spec = load_sweep_spec(PAPER)
    assert spec.seeds == [0, 42, 123]
    epochs, batch, frames, words = PROTOCOL[benchmark]
    for method in sorted(set(spec.methods) - {"zero-shot"}):
        train = trial_spec(spec, benchmark, method, {})
        got = (train.epochs, train.batch_size, train.num_frames, train.max_words, train.optimizer)
        assert got == (epochs, batch, frames, words, "bertadam"), (method, got)
        assert spec.epochs_of(benchmark, method) == epochs
    mv = trial_spec(spec, benchmark, "mv-adapter", {"width": 32}).knobs  # the search leaves the CMT unset
    assert {knob: getattr(mv, knob) for knob in PAPER_SETTINGS[benchmark]} == PAPER_SETTINGS[benchmark]
    assert (mv.width, mv.max_frames, mv.max_words) == (32, max(frames, 12), max(words, 32))
    assert mv.lnin == (benchmark == "activitynet")
    other = "down-in" if PAPER_SETTINGS[benchmark]["cmt_mode"] == "down-out" else "down-out"
    assert trial_spec(spec, benchmark, "mv-adapter", {"cmt_mode": other}).knobs.cmt_mode == other  # sampled wins


def write(tmp_path: Path, edit, base: Path = QUICKSTART) -> Path:
    data = yaml.safe_load(base.read_text())
    edit(data)
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_per_benchmark_method_knob_override_takes_effect(tmp_path):
    override = {"msvd": {"methods": {"mv-adapter": {"knobs": {"cmt_layers": [-1], "cmt_factor_dim": 8}}}}}
    spec = load_sweep_spec(write(tmp_path, lambda d: d["per_benchmark"].update(override), PAPER))
    msvd = trial_spec(spec, "msvd", "mv-adapter", {}).knobs
    assert (msvd.cmt_layers, msvd.cmt_factor_dim, msvd.cmt_mode) == ([-1], 8, "down-in")  # the rest: the authors'
    msrvtt = trial_spec(spec, "msrvtt", "mv-adapter", {}).knobs
    assert (msrvtt.cmt_layers, msrvtt.cmt_factor_dim) == ([-2, -1], 32)  # other benchmarks keep theirs
    assert trial_spec(spec, "msvd", "mv-adapter", {"cmt_factor_dim": 16}).knobs.cmt_factor_dim == 16  # sampled last


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.update(colour="red"), r"spec.yaml: colour: unknown key"),
        (lambda d: d["budget"].update(trails=3), r"budget.trails: unknown key"),
        (
            lambda d: d["methods"].update({"mvadapter": {}}),
            r"methods.mvadapter: unknown method .mvadapter.; allowed: zero-shot",
        ),
        (lambda d: d.update(benchmarks=["msr-vtt"]), r"spec.yaml: benchmarks: unknown benchmark 'msr-vtt'.*msrvtt"),
        (
            lambda d: d["methods"]["rap"]["search"].update(sparsity={"float": [0.9, 0.2]}),
            r"methods.rap.search.sparsity: empty or inverted range \[0.9, 0.2\]",
        ),
        (lambda d: d["methods"]["rap"]["search"].update(rank={"int": [4, 4]}), r"empty or inverted range \[4, 4\]"),
        (
            lambda d: d["methods"]["rap"]["search"].update(width={"int": [4, 8]}),
            r"methods.rap.search.width: neither a knob of rap",
        ),
        (lambda d: d["train"].update(epoch=3), r"train.epoch: unknown training field"),
        (lambda d: d["budget"].update(trials=0), r"budget.trials: Input should be greater than 0"),
        (lambda d: d["objective"].update(metric="accuracy"), r"objective.metric"),
        (
            lambda d: d["train"].update(optimizer="sgd"),
            r"spec.yaml: train\.optimizer: Input should be 'adamw' or 'bertadam' \(got 'sgd'\)",
        ),
        (
            lambda d: d.update(per_benchmark={"synthetic": {"methods": {"rap": {"train": {"optimizer": "sgd"}}}}}),
            r"spec.yaml: per_benchmark\.synthetic\.methods\.rap\.train\.optimizer: Input should be 'adamw' or 'bert",
        ),
        (
            lambda d: d["methods"]["rap"].update(train={"optimizer": "sgd"}),
            r"spec.yaml: methods\.rap\.train\.optimizer: Input should be 'adamw' or 'bertadam'",
        ),
        (
            lambda d: d["methods"]["rap"]["search"].update(optimizer={"choice": ["adamw", "sgd"]}),
            r"spec.yaml: methods\.rap\.search\.optimizer: Input should be 'adamw' or 'bertadam' \(got 'sgd'\)",
        ),
        (
            lambda d: d.update(per_benchmark={"synthetic": {"train": {"epochs": 0}}}),
            r"spec.yaml: per_benchmark\.synthetic\.train\.epochs: Input should be greater than 0 \(got 0\)",
        ),
        (
            lambda d: d.update(per_benchmark={"msrvtt": {"train": {"epochs": 15}}}),
            r"spec.yaml: per_benchmark\.msrvtt: this spec does not run benchmark 'msrvtt'; it runs synthetic",
        ),
        (
            lambda d: d.update(per_benchmark={"synthetic": {"methods": {"mv-adapter": {"knobs": {"cmt_init": "x"}}}}}),
            r"spec.yaml: per_benchmark\.synthetic\.methods\.mv-adapter\.knobs: .*cmt_init='x': "
            r"Input should be 'authors' or 'identity'",
        ),
        (
            lambda d: d["train"].update(batch_size=33, workers=2),
            r"spec.yaml: methods\.bottleneck on synthetic: .*batch_size 33 must be divisible by workers 2",
        ),
    ],
)
def test_bad_specs_name_the_file_and_key(tmp_path, edit, message):
    with pytest.raises(ConfigError, match=message):
        load_sweep_spec(write(tmp_path, edit))


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_sweep_spec(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: line 2: not valid YAML"):
        load_sweep_spec(bad)


def test_trial_spec_routes_knobs_and_training_fields():
    spec = load_sweep_spec(QUICKSTART)
    train = trial_spec(spec, "synthetic", "mv-adapter", {"width": 16, "lr": 1e-3})
    assert train.knobs.width == 16 and train.lr == 1e-3
    assert train.num_frames == 4 and train.max_words == 32  # the sweep's frames, the synthetic card's words
    assert train.epochs == spec.train["epochs"]
