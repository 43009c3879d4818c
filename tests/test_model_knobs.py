"""Knob validation: unknown methods and knobs, out-of-range values, and values that do not fit the backbone."""

from __future__ import annotations

import pytest

from model_helpers import tiny_model
from vtrlab.config import TrainSpec
from vtrlab.errors import ConfigError
from vtrlab.model.factory import create_model
from vtrlab.model.methods import benchmark_knobs, knob_defaults, list_methods, parse_knobs


def test_every_method_has_validated_defaults():
    for method in list_methods():
        assert parse_knobs(method).model_dump() == knob_defaults(method)


@pytest.mark.parametrize(
    ("method", "knobs", "message"),
    [
        ("bottleneck", {"width": 0}, r"width=0.*greater than 0"),
        ("mv-adapter", {"width": -4}, r"width=-4"),
        ("rap", {"sparsity": 0}, r"sparsity=0.*greater than 0"),
        ("rap", {"sparsity": 1.5}, r"sparsity=1.5.*less than or equal to 1"),
        ("rap", {"selection": "oracle"}, r"selection='oracle'.*query-agnostic.*text-conditioned"),
        ("lora", {"targets": ["q", "x"]}, r"targets"),
        ("mv-adapter", {"cmt_mode": "sideways"}, r"cmt_mode"),
        ("mv-adapter", {"cmt_init": "zeros"}, r"cmt_init='zeros': Input should be 'authors' or 'identity'"),
        ("mv-adapter", {"init": "xavier"}, r"init='xavier': Input should be 'authors' or 'library'"),
        ("mv-adapter", {"cls_value": "cls"}, r"cls_value='cls': Input should be 'trm-cls' or 'local-context'"),
        ("lora", {"rnak": 4}, r"unknown knob\(s\) \['rnak'\].*allowed: rank, alpha"),
        ("zero-shot", {"width": 4}, r"unknown knob\(s\) \['width'\].*allowed: none"),
    ],
)
def test_invalid_knobs_name_the_knob_and_what_is_allowed(method, knobs, message):
    with pytest.raises(ConfigError, match=message):
        parse_knobs(method, knobs)


@pytest.mark.parametrize(
    ("method", "knobs", "message"),
    [
        ("lora", {"rank": 100}, r"rank=100 is larger than the (visual|text) tower's width"),
        ("bottleneck", {"width": 200}, r"width=200 is larger"),
        ("mv-adapter", {"cmt_layers": [7]}, r"cmt_layers: layer 7 is outside"),
        ("bottleneck", {"layers": [0, -4]}, r"the same block twice"),
        ("rap", {"rank": 65}, r"rank=65 is larger than the embedding width 64"),
        ("mv-adapter", {"width": 15}, r"divisible by trm_heads"),
    ],
)
def test_knobs_that_do_not_fit_the_backbone_are_refused(method, knobs, message):
    with pytest.raises(ConfigError, match=message):
        tiny_model(method, **knobs)


def test_unknown_method_lists_the_registry():
    with pytest.raises(ConfigError, match=r"unknown method 'adapterx'; allowed: zero-shot, full, bottleneck"):
        create_model("adapterx", "vtr-tiny")


def test_methods_record_their_knobs():
    encoder = tiny_model("lora", rank=2)
    assert encoder.method == "lora"
    assert encoder.knobs["rank"] == 2


@pytest.mark.parametrize(
    ("benchmark", "expected"),
    [
        ("msrvtt", {"cmt_mode": "down-out", "cmt_layers": [-2, -1], "lnin": False, "max_frames": 12}),
        ("didemo", {"cmt_mode": "down-out", "cmt_layers": [-2, -1], "max_frames": 32, "max_words": 64}),
        ("msvd", {"cmt_mode": "down-in", "cmt_layers": [-2, -1]}),
        ("lsmdc", {"cmt_mode": "down-in", "cmt_layers": [-3, -2, -1]}),
        ("activitynet", {"cmt_mode": "down-in", "cmt_layers": [-1], "lnin": True, "max_words": 64}),
        ("synthetic", {"cmt_mode": "down-in", "cmt_layers": [-2, -1], "lnin": False}),  # no published setting
    ],
)
def test_mv_adapter_takes_the_benchmarks_setting_for_unset_knobs(benchmark, expected):
    spec = TrainSpec(benchmark=benchmark, method="mv-adapter", data="/nowhere").resolved()
    assert {key: spec.knob_values[key] for key in expected} == expected


def test_knobs_a_run_sets_win_over_the_benchmarks_setting():
    knobs = {"cmt_mode": "down-in", "lnin": False}
    spec = TrainSpec(benchmark="activitynet", method="mv-adapter", data="/nowhere", knobs=knobs).resolved()
    assert spec.knobs.cmt_mode == "down-in" and spec.knobs.lnin is False and spec.knobs.cmt_layers == [-1]
    assert benchmark_knobs("lora", "msrvtt") == {} and benchmark_knobs("mv-adapter", None) == {}
    benchmark_knobs("mv-adapter", "lsmdc")["cmt_layers"].append(0)  # a copy: the registry keeps its own
    assert benchmark_knobs("mv-adapter", "lsmdc")["cmt_layers"] == [-3, -2, -1]
