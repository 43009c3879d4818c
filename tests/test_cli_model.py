"""`vtrlab model list|params` and `vtrlab selfcheck`, run as a user runs them (a subprocess)."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from servers import run_vtrlab


def vtrlab(*args: str) -> subprocess.CompletedProcess:
    return run_vtrlab(list(args), dict(os.environ), timeout=300)


def test_model_list_shows_every_method_with_knob_defaults():
    result = vtrlab("model", "list", "--json")
    assert result.returncode == 0, result.stderr
    methods = json.loads(result.stdout)
    assert list(methods) == ["zero-shot", "full", "bottleneck", "lora", "mv-adapter", "rap"]
    assert methods["mv-adapter"]["knobs"]["width"] == 64
    assert methods["rap"]["knobs"]["selection"] == "query-agnostic"
    table = vtrlab("model", "list")
    assert table.returncode == 0 and "calibration_shrink" in table.stdout


def test_model_params_json_for_mv_adapter_on_vit_b16():
    result = vtrlab("model", "params", "--method", "mv-adapter", "--backbone", "ViT-B-16", "--json")
    assert result.returncode == 0, result.stderr
    counts = json.loads(result.stdout)
    assert counts["total"] > counts["trainable"] > 3.4e6
    assert 2.3 < counts["trainable_pct"] < 2.5


def test_model_params_counts_a_benchmarks_setting():
    args = ["model", "params", "--method", "mv-adapter", "--backbone", "ViT-B-16", "--benchmark", "msrvtt", "--json"]
    result = vtrlab(*args)
    assert result.returncode == 0, result.stderr
    counts = json.loads(result.stdout)
    assert counts["knobs"]["cmt_mode"] == "down-out" and counts["benchmark"] == "msrvtt"
    assert counts["trainable"] == 3_496_704 and round(counts["trainable_pct"], 2) == 2.34  # not the paper's 2.39


def test_model_params_accepts_knob_overrides():
    result = vtrlab(
        "model",
        "params",
        "--method",
        "lora",
        "--backbone",
        "vtr-tiny",
        "--set",
        "rank=2",
        "--set",
        "targets=[q,v]",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["knobs"]["rank"] == 2 and payload["knobs"]["targets"] == ["q", "v"]
    # 4 blocks x 2 targets (q, v) x (A + B = 2 x rank x width), visual width 128 + text width 64
    assert payload["trainable"] == 4 * 2 * 2 * 2 * (128 + 64)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--method", "rap", "--set", "sparsity=1.5"], "sparsity=1.5"),
        (["--method", "lora", "--set", "rank=500"], "rank=500 is larger"),
        (["--method", "nope"], "unknown method 'nope'"),
        (["--method", "lora", "--set", "rank"], "expected key=value"),
        (["--method", "mv-adapter", "--set", "cmt_init=zeros"], "cmt_init='zeros': Input should be 'authors' or"),
        (["--method", "mv-adapter", "--benchmark", "kinetics"], "kinetics"),
    ],
)
def test_bad_knobs_exit_2_with_one_line(args, message):
    result = vtrlab("model", "params", "--backbone", "vtr-tiny", *args)
    assert result.returncode == 2
    assert message in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr


def test_selfcheck_prints_every_method():
    result = vtrlab("selfcheck", "--steps", "2")
    assert result.returncode == 0, result.stderr
    for method in ("zero-shot", "full", "bottleneck", "lora", "mv-adapter", "rap"):
        assert method in result.stdout
