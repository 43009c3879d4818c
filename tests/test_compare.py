"""`vtrlab compare` on a finished sweep: the table, the files, what is logged to the parent run, the papers'
reference rows, and the errors for experiments that do not exist or hold no runs."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from mlflow.tracking import MlflowClient

from servers import run_vtrlab
from vtrlab.report.collect import TrialRecord
from vtrlab.report.plots import pareto_front
from vtrlab.report.references import load_references
from vtrlab.report.table import MEASURED, REPORTED, best_rows, markdown_table, reference_rows
from vtrlab.train.query_ranks import QueryRanks

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def compared(workflow, tmp_path_factory):
    out = tmp_path_factory.mktemp("compare")
    result = run_vtrlab(["compare", "--out", str(out)], workflow["env"])
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return {"out": out, "result": result, "json": json.loads((out / "comparison.json").read_text())}


def _trial_runs(workflow) -> list:
    client = MlflowClient(workflow["tracking_uri"])
    experiment = client.get_experiment_by_name("sweep-workflow")
    return client.search_runs([experiment.experiment_id], "tags.`vtrlab.kind` = 'trial'")


def test_the_table_has_the_best_trial_of_every_method(workflow, compared):
    runs = _trial_runs(workflow)
    best: dict[str, float] = {}
    for run in runs:
        method = run.data.tags["method"]
        best[method] = max(best.get(method, -1.0), run.data.metrics["t2v_R1"])
    rows = {r["method"]: r for r in compared["json"]["rows"] if r["kind"] == MEASURED}
    assert set(rows) == {"zero-shot", "bottleneck", "mv-adapter"} == set(best)
    for method, row in rows.items():
        assert row["metrics"]["t2v_R1"] == pytest.approx(best[method])
        for key in ("t2v_R5", "t2v_R10", "t2v_MdR", "t2v_MnR", "v2t_R1", "v2t_R5", "v2t_R10", "v2t_MdR", "v2t_MnR"):
            assert key in row["metrics"], (method, key)
        assert row["gpu_hours"] == 0.0  # CPU workers hold no GPU
        assert row["wall_hours"] > 0
    assert rows["mv-adapter"]["trials"] == 2
    client = MlflowClient(workflow["tracking_uri"])
    for method, row in rows.items():  # intervals from the best run's own per-query ranks, over all its queries
        with tempfile.TemporaryDirectory() as directory:
            path = client.download_artifacts(row["run_id"], "eval/ranks.json", directory)
            ranks = QueryRanks.from_json(Path(path).read_text(), path)
        assert row["queries"] == {"t2v": ranks.t2v.numel(), "v2t": ranks.v2t.numel()}
        assert row["metrics"]["t2v_queries"] == row["queries"]["t2v"]  # what the run logged
        for metric in ("t2v_R1", "t2v_R5", "t2v_R10", "v2t_R1", "v2t_R5", "v2t_R10"):
            interval = row["intervals"][metric]
            assert interval == ranks.interval(metric).to_dict(), (method, metric)
            assert interval["low"] <= row["metrics"][metric] <= interval["high"]
        assert (row["versus_baseline"] is None) == (method == "zero-shot")
    contrasts = compared["json"]["contrasts"]
    assert {frozenset((c["a"], c["b"])) for c in contrasts} == {
        frozenset(pair)
        for pair in (("zero-shot", "bottleneck"), ("zero-shot", "mv-adapter"), ("bottleneck", "mv-adapter"))
    }
    for contrast in contrasts:
        assert contrast["difference"] >= 0 and contrast["low"] <= contrast["difference"] <= contrast["high"]
        assert contrast["significant"] == (contrast["low"] > 0 or contrast["high"] < 0)
    assert "Paired differences in T2V R@1" in compared["result"].stdout
    assert rows["zero-shot"]["trainable_params"] == 0
    assert 0 < rows["mv-adapter"]["trainable_pct"] < 100
    stdout = compared["result"].stdout
    for method in rows:
        assert method in stdout
    assert "comparison.html" in stdout and "parent run" in stdout


def test_the_report_files_are_written_and_logged_to_the_parent_run(workflow, compared):
    out = compared["out"]
    for name in ("comparison.md", "comparison.html", "comparison.json", "pareto.png", "learning_curves.png"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    html = (out / "comparison.html").read_text()
    assert html.count("data:image/png;base64,") == 2 and "mv-adapter" in html
    markdown = (out / "comparison.md").read_text()
    assert "](pareto.png)" in markdown and "](learning_curves.png)" in markdown
    assert "*46.2* | *73.2* | *82.7*" in markdown  # MV-Adapter's reported MSR-VTT T2V, in the papers' section
    assert "## Paired differences in T2V R@1" in markdown and "Paired differences in T2V R@1" in html
    client = MlflowClient(workflow["tracking_uri"])
    (parent,) = compared["json"]["logged_to"]
    assert client.get_run(parent).data.tags["vtrlab.kind"] == "sweep"
    logged = {a.path for a in client.list_artifacts(parent, "compare")}
    assert {f"compare/{n}" for n in ("comparison.md", "comparison.html", "pareto.png", "learning_curves.png")} <= logged


def test_reference_rows_are_marked_reported_beside_measured_ones():
    trial = TrialRecord(
        run_id="r1", run_name="mv", experiment="sweep-x", parent_run_id="p", sweep="x", method="mv-adapter",
        benchmark="msrvtt", backbone="ViT-B-16", status="FINISHED", metrics={"t2v_R1": 40.0, "trainable_params": 3e6},
        params={"workers": "2", "gpus_per_worker": "1"}, hours=1.5, devices=2,
    )  # fmt: skip
    measured = best_rows([trial])
    references = [r for r in load_references() if r.benchmark == "msrvtt"]
    rows = measured + reference_rows(references)
    assert measured[0].gpu_hours == pytest.approx(3.0)
    reported = [r for r in rows if r.kind == REPORTED]
    assert {r.method for r in reported} >= {"mv-adapter", "full", "bottleneck", "rap"}
    assert all(r.gpu_hours is None and r.run_id is None for r in reported)
    table = markdown_table(rows)
    assert "| msrvtt | mv-adapter | measured (1 trial) | – | 40.0 | – | – |" in table  # no ranks: no interval
    assert "*reported: MV-Adapter, ViT-B/16*" in table and "*46.2* | *73.2* | *82.7*" in table
    measured[0].intervals = {"t2v_R1": {"value": 40.0, "low": 36.9, "high": 43.1, "queries": 1000}}
    measured[0].queries = {"t2v": 1000, "v2t": 1000}
    measured[0].versus_baseline = {"difference": 8.2, "low": 5.1, "high": 11.0, "significant": True}
    table = markdown_table(measured)
    assert "| 1000/1000 | 40.0 [36.9, 43.1] |" in table and "| +8.2 [+5.1, +11.0] significant |" in table


@given(st.lists(st.tuples(st.integers(0, 10**6), st.floats(0, 100)), min_size=1, max_size=30))
def test_pareto_front_points_are_undominated_and_dominate_the_rest(points):
    front = pareto_front([(float(x), y) for x, y in points])
    for x, y in front:
        assert not any(px <= x and py >= y and (px, py) != (x, y) and (px < x or py > y) for px, py in points)
    for x, y in points:
        assert any(fx <= x and fy >= y for fx, fy in front)


def test_an_unknown_experiment_is_named_with_the_known_ones(workflow):
    result = run_vtrlab(["compare", "--experiment", "sweep-nope"], workflow["env"])
    assert result.returncode == 3
    assert "sweep-nope" in result.stderr and "sweep-workflow" in result.stderr


def test_an_experiment_without_runs_is_refused(workflow, tmp_path):
    client = MlflowClient(workflow["tracking_uri"])
    if client.get_experiment_by_name("sweep-empty") is None:
        client.create_experiment("sweep-empty", artifact_location=(tmp_path / "artifacts").as_uri())
    result = run_vtrlab(["compare", "--experiment", "sweep-empty", "--out", str(tmp_path)], workflow["env"])
    assert result.returncode == 3
    assert "no finished trial runs" in result.stderr and "sweep-empty" in result.stderr
    assert not (tmp_path / "comparison.md").exists()


def test_a_store_without_sweeps_says_how_to_make_one(tmp_path, workflow):
    env = {**workflow["env"], "VTRLAB_HOME": str(tmp_path / "empty-home")}
    result = run_vtrlab(["compare"], env)
    assert result.returncode == 3
    assert "no sweep experiments" in result.stderr and "vtrlab sweep" in result.stderr
