"""Benchmarks as a registry: one module per benchmark (parser + card next to it), discovered without a
hand-kept list; a card file for a user's own benchmark names a registered parser; sweeps and suites may
name such a card file."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from vtrlab.data.benchmarks import get_benchmark, list_benchmarks, registry
from vtrlab.data.card import card_path, load_card
from vtrlab.data.parsers import parse_annotations
from vtrlab.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def test_every_benchmark_module_registers_itself():
    pkg = REPO / "platform" / "vtrlab" / "data" / "benchmarks"
    with_cards = sorted(p.stem for p in pkg.glob("*.yaml"))
    assert sorted(list_benchmarks()) == with_cards == ["activitynet", "didemo", "lsmdc", "msrvtt", "msvd", "synthetic"]
    for name in with_cards:
        entry = get_benchmark(name)
        assert entry.card == pkg / f"{name}.yaml" and entry.summary
        assert entry.parse.__module__ == f"vtrlab.data.benchmarks.{name}"
    with pytest.raises(ConfigError, match=r"unknown benchmark 'kinetics'; registered: activitynet, didemo"):
        get_benchmark("kinetics")


def test_a_new_module_is_found_without_a_list(tmp_path, monkeypatch):
    """What adding a benchmark takes: a module with a registered parser and its card next to it."""
    (tmp_path / "mine.py").write_text(
        "from vtrlab.data.benchmarks import register_benchmark\n"
        "from vtrlab.data.benchmarks.common import Parsed, VideoItem\n\n\n"
        '@register_benchmark("mine", "a test benchmark")\n'
        "def parse(card, ann_dir, splits, strict_ids=False):\n"
        "    return Parsed({s: [VideoItem('v1', ['a caption'])] for s in splits})\n"
    )
    card = yaml.safe_load(card_path("msvd").read_text())
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump({**card, "name": "mine"}))
    monkeypatch.setattr(registry, "_BENCHMARKS", dict(registry._BENCHMARKS))
    monkeypatch.setattr(registry, "PACKAGE", "vtrlab.data.benchmarks")
    pkg = importlib.import_module("vtrlab.data.benchmarks")
    monkeypatch.setattr(pkg, "__path__", [*pkg.__path__, str(tmp_path)])
    monkeypatch.setattr(registry, "_discovered", False)
    monkeypatch.delitem(sys.modules, "vtrlab.data.benchmarks.mine", raising=False)
    assert "mine" in list_benchmarks()
    assert load_card("mine").name == "mine"
    assert parse_annotations(load_card("mine"), tmp_path, ["test"])["test"][0].captions == ["a caption"]
    with pytest.raises(RuntimeError, match="registered twice"):
        registry.register_benchmark("mine", "again")(lambda *a: None)
    sys.modules.pop("vtrlab.data.benchmarks.mine", None)


def _user_card(tmp_path, **changes) -> Path:
    data = yaml.safe_load(card_path("msrvtt").read_text())
    data.update({"name": "my-msrvtt", "parser": "msrvtt", **changes})
    data = {k: v for k, v in data.items() if v is not None}
    p = tmp_path / "my-msrvtt.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


def test_a_users_card_in_a_registered_layout(tmp_path, benchmark_fixtures):
    p = _user_card(tmp_path, splits={"train": {"videos": 5, "captions": 15}, "test": {"videos": 2, "captions": 2}})
    card = load_card(p)
    assert (card.name, card.parser_name) == ("my-msrvtt", "msrvtt")
    assert load_card(str(p)) == card
    parsed = parse_annotations(card, benchmark_fixtures["msrvtt"]["annotations"])
    assert len(parsed["train"]) == 5 and len(parsed["test"]) == 2


def test_unknown_parser_or_protocol_names_file_and_key(tmp_path):
    p = _user_card(tmp_path, parser="kinetics")
    with pytest.raises(ConfigError, match=rf"{p}: parser: no registered benchmark parser 'kinetics'.*msrvtt"):
        load_card(p)
    p = _user_card(tmp_path, parser=None)  # the parser defaults to the name, which is not registered
    with pytest.raises(ConfigError, match=rf"{p}: name: no registered benchmark parser 'my-msrvtt'"):
        load_card(p)
    p = _user_card(tmp_path, protocol="two-caption")
    with pytest.raises(ConfigError, match=rf"{p}: protocol: "):
        load_card(p)
    p = _user_card(tmp_path, name="../escape")
    with pytest.raises(ConfigError, match=rf"{p}: name: "):
        load_card(p)
    with pytest.raises(ConfigError, match="dataset card file not found"):
        load_card(tmp_path / "absent.yaml")
    with pytest.raises(ConfigError, match="unknown benchmark 'kinetics': expected one of activitynet"):
        load_card("kinetics")


def test_synthetic_has_no_annotation_parser(tmp_path):
    with pytest.raises(ConfigError, match="vtrlab data synth"):
        parse_annotations(load_card("synthetic"), tmp_path)


def test_sweeps_and_suites_accept_a_card_file(tmp_path, monkeypatch):
    from vtrlab.regress.suite import load_suite
    from vtrlab.sweep.spec import load_sweep_spec, trial_spec

    # the quickstart suite names the backbone `make demo` pretrains under $VTRLAB_HOME (checked to exist)
    monkeypatch.setenv("VTRLAB_HOME", str(tmp_path))
    (tmp_path / "backbones").mkdir()
    (tmp_path / "backbones" / "vtr-tiny-synthetic-demo.safetensors").touch()

    card = yaml.safe_load(card_path("synthetic").read_text())
    cp = tmp_path / "shapes.yaml"
    cp.write_text(yaml.safe_dump({**card, "name": "shapes", "parser": "synthetic", "num_frames": 8}))
    sweep = yaml.safe_load((REPO / "sweeps" / "quickstart.yaml").read_text())
    sweep["train"].pop("num_frames", None)  # the card's frames apply where the sweep sets none
    sp = tmp_path / "sweep.yaml"
    sp.write_text(yaml.safe_dump({**sweep, "benchmarks": [str(cp)]}))
    spec = load_sweep_spec(sp)
    trial = trial_spec(spec, str(cp), "rap", {})
    assert trial.num_frames == 8 and trial.data.endswith("/data/shapes")
    # the card goes by its name, never its path, in registry names and sweep keys
    from vtrlab.sweep.driver import SweepRunner
    from vtrlab.tracking.registry import registered_model_name

    assert registered_model_name(str(cp), "vtr-tiny") == "vtrlab-shapes-vtr-tiny"
    assert SweepRunner._pair(str(cp), "rap") == "shapes__rap"
    suite = yaml.safe_load((REPO / "sweeps" / "regression-quickstart.yaml").read_text())
    suite.pop("data", None)
    suite["entries"] = [{**e, "benchmark": str(cp)} for e in suite["entries"]]
    up = tmp_path / "suite.yaml"
    up.write_text(yaml.safe_dump(suite))
    assert {e.benchmark for e in load_suite(up).entries} == {str(cp)}
    sp.write_text(yaml.safe_dump({**sweep, "benchmarks": [str(tmp_path / "nope.yaml")]}))
    with pytest.raises(ConfigError, match=r"sweep.yaml: benchmarks: .*nope.yaml: dataset card file not found"):
        load_sweep_spec(sp)


def test_data_imports_neither_ray_nor_the_model_package():
    code = (
        "import sys, vtrlab.data, vtrlab.data.build, vtrlab.data.cli, vtrlab.data.parsers\n"
        "vtrlab.data.list_benchmarks()\n"
        "bad = sorted(m for m in sys.modules if m == 'ray' or m.startswith(('ray.', 'vtrlab.model', 'vtrlab.train')))\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_no_data_module_imports_ray_or_the_model_package_even_lazily():
    """The build gets its task runner (vtrlab.tasks) and the loaders their tokenizer (vtrlab.text) injected:
    no import of Ray, vtrlab.model or vtrlab.train anywhere in data/, inside functions included."""
    import ast

    import vtrlab.data

    root = Path(vtrlab.data.__file__).parent
    bad = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            bad += [f"{path.name}:{node.lineno} {n}" for n in names if n == "ray" or n.startswith(FORBIDDEN)]
    assert not bad, bad


FORBIDDEN = ("ray.", "vtrlab.model", "vtrlab.train")
