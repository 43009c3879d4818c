"""Sweep specs: the shipped ones validate; bad ones stop before anything starts, naming file and key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from vtrlab.errors import ConfigError
from vtrlab.sweep.spec import load_sweep_spec, trial_spec

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "sweeps" / "quickstart.yaml"


@pytest.mark.parametrize("name", ["quickstart.yaml", "paper.yaml"])
def test_shipped_specs_are_valid(name):
    spec = load_sweep_spec(ROOT / "sweeps" / name)
    assert spec.methods and spec.benchmarks


def test_paper_spec_covers_five_benchmarks_and_six_methods():
    spec = load_sweep_spec(ROOT / "sweeps" / "paper.yaml")
    assert set(spec.benchmarks) == {"msrvtt", "msvd", "lsmdc", "didemo", "activitynet"}
    assert set(spec.methods) == {"zero-shot", "full", "bottleneck", "lora", "mv-adapter", "rap"}


def write(tmp_path: Path, edit) -> Path:
    data = yaml.safe_load(QUICKSTART.read_text())
    edit(data)
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


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
            r"methods.rap.search.sparsity: Value error, empty or inverted range \[0.9, 0.2\]",
        ),
        (lambda d: d["methods"]["rap"]["search"].update(rank={"int": [4, 4]}), r"empty or inverted range \[4, 4\]"),
        (
            lambda d: d["methods"]["rap"]["search"].update(width={"int": [4, 8]}),
            r"methods.rap.search.width: neither a knob of rap",
        ),
        (lambda d: d["train"].update(epoch=3), r"train.epoch: unknown training field"),
        (lambda d: d["budget"].update(trials=0), r"budget.trials: Input should be greater than 0"),
        (lambda d: d["objective"].update(metric="accuracy"), r"objective.metric"),
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
    assert train.num_frames == 12 and train.max_words == 32  # from the synthetic card
    assert train.epochs == spec.train["epochs"]
