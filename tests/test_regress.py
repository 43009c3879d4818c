"""`vtrlab regress` through the CLI, on a copy of the `workflow` fixture's store (its champion, its runs):
two training runs on a Ray head started here (the second compares with the first and finds a regression
against a higher earlier run), the champion re-evaluated, a benchmark without a champion, malformed suites,
and the schedules (RayCronJob, GitHub Actions) naming a real suite and real flags."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import time
from pathlib import Path

import pytest
import yaml
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

from servers import run_vtrlab

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
SUITE = "ci"
EXPERIMENT = f"regression-{SUITE}"
ADAPTER = "synthetic.mv-adapter"  # same configuration as the workflow sweep's MV-Adapter trials
ZERO_SHOT = "synthetic.zero-shot"


def suite_dict(world: dict, **changes) -> dict:
    suite = {
        "name": SUITE,
        "backbone": "vtr-tiny",
        "weights": world["weights"],
        "data": {"synthetic": world["data"]},
        "train": {"epochs": 2, "batch_size": 32, "epoch_batches": 3, "eval_batch_size": 64, "workers": 1},
        "seeds": [0, 1],
        "tolerance": {"max_r1_drop": 4.7, "seed_sigmas": 2.0},
        "budget": {"max_concurrent": 3},
        "entries": [
            {
                "benchmark": "synthetic",
                "method": "mv-adapter",
                "knobs": {"width": 16, "cmt_layers": [-2, -1]},
                "train": {"lr": 2.0e-3},
            },
            {"benchmark": "synthetic", "method": "zero-shot", "seeds": [0]},
        ],
    }
    suite.update(changes)
    return suite


def write(path: Path, payload: dict) -> Path:
    path.write_text(yaml.safe_dump(payload, sort_keys=False))
    return path


def failure(result) -> str:
    return f"exit {result.returncode}\nstdout:\n{result.stdout[-4000:]}\nstderr:\n{result.stderr[-6000:]}"


def registry_state(mlflow: MlflowClient) -> list:
    return sorted(
        (
            m.name,
            sorted(m.aliases.items()),
            sorted((v.version, v.run_id) for v in mlflow.search_model_versions(f"name='{m.name}'")),
        )
        for m in mlflow.search_registered_models()
    )


def _mv_adapter_champion(tracking_uri: str, model: str) -> None:
    """Make the workflow sweep's best MV-Adapter trial the champion, registered as the sweep registers one.

    These tests compare an MV-Adapter entry with the champion; on the tiny workflow sweep (a few training steps on
    64 test clips) the methods often tie on T2V R@1, so which one the sweep registered is chance."""
    from vtrlab.tracking.client import Tracker
    from vtrlab.tracking.records import RunState
    from vtrlab.tracking.registry import register_adapter

    tracker = Tracker(tracking_uri)
    champion = tracker.version_by_alias(model, "champion")
    if champion.tags.get("method") == "mv-adapter":
        return
    trials = [r for r in tracker.runs_tagged({"method": "mv-adapter"}) if r.status == RunState.FINISHED]
    best = max((r for r in trials if "t2v_R1" in r.metrics), key=lambda r: r.metrics["t2v_R1"])
    tags = {k: v for k, v in champion.tags.items() if not k.startswith("metric.") and k != "vtrlab.run_id"}
    registration = register_adapter(
        tracker, model, best.run_id, best.metrics, "t2v_R1", "max", tags={**tags, "method": "mv-adapter"}
    )
    tracker.set_alias(model, "champion", registration.version)


@pytest.fixture(scope="module")
def world(workflow, tmp_path_factory):
    """The workflow's store copied into a home of its own (regress logs here, never into the session's store),
    a Ray head with the dashboard shared by the regress runs (`--address`), and the suite file."""
    from vtrlab.cluster import LocalRay

    root = tmp_path_factory.mktemp("regress")
    home = root / "home"
    home.mkdir()
    with sqlite3.connect(Path(workflow["home"]) / "mlflow.db") as source, sqlite3.connect(home / "mlflow.db") as copy:
        source.backup(copy)
    env = {**workflow["env"], "VTRLAB_HOME": str(home), "COLUMNS": "400"}  # wide: messages name long tmp paths
    ray = LocalRay(num_cpus=4, env={"VTRLAB_HOME": str(home)}).start()  # 3 trials at once: mostly waiting
    env.update(ray.client_env())  # its token: Ray's token authentication is on
    world = {**workflow, "root": root, "home": home, "env": env, "tracking_uri": f"sqlite:///{home / 'mlflow.db'}"}
    _mv_adapter_champion(world["tracking_uri"], workflow["model"])
    world["suite"] = write(root / "ci.yaml", suite_dict(world))
    world["address"] = ray.address
    yield world
    ray.stop()


@pytest.fixture(scope="module")
def first(world):
    started = time.perf_counter()
    result = run_vtrlab(
        ["regress", str(world["suite"]), "--address", world["address"], "--out", str(world["root"] / "out1")],
        world["env"],
    )
    print(f"first regression: {time.perf_counter() - started:.0f} s")
    assert result.returncode == 0, failure(result)
    return result


@pytest.fixture(scope="module")
def second(world, first):
    """A second run, after an earlier run of the zero-shot entry that scored 50 points higher was logged."""
    mlflow = MlflowClient(world["tracking_uri"])
    experiment = mlflow.get_experiment_by_name(EXPERIMENT)
    run1 = mlflow.get_run(json.loads((world["root"] / "out1" / "results.json").read_text())["run_id"])
    fake = mlflow.create_run(
        experiment.experiment_id,
        run_name="an earlier, better zero-shot",
        tags={"vtrlab.kind": "regression", "regression.mode": "train", "suite": SUITE},
    )
    key = f"entry.{ZERO_SHOT}.fingerprint"
    high = run1.data.metrics[f"{ZERO_SHOT}.t2v_R1_mean"] + 50
    mlflow.log_batch(
        fake.info.run_id,
        metrics=[Metric(f"{ZERO_SHOT}.t2v_R1_mean", high, int(time.time() * 1000), 0)],
        params=[Param(key, run1.data.params[key])],
    )
    mlflow.set_terminated(fake.info.run_id, "FINISHED")
    started = time.perf_counter()
    args = ["regress", str(world["suite"]), "--address", world["address"], "--out", str(world["root"] / "out2")]
    result = run_vtrlab([*args, "--json"], world["env"])
    print(f"second regression: {time.perf_counter() - started:.0f} s")
    return {"result": result, "run1": run1, "fake": fake.info.run_id, "high": high}


def test_a_suite_passes_writes_its_report_and_logs_a_regression_run(world, first):
    assert "verdict: pass" in first.stdout and ADAPTER in first.stdout
    out = world["root"] / "out1"
    results = json.loads((out / "results.json").read_text())
    assert results["verdict"] == "pass"
    entries = {e["key"]: e for e in results["entries"]}
    adapter, zero_shot = entries[ADAPTER], entries[ZERO_SHOT]

    mlflow = MlflowClient(world["tracking_uri"])
    champion = mlflow.get_model_version_by_alias(world["model"], "champion")
    assert adapter["verdict"] == "pass" and adapter["champion"]["comparable"]
    assert adapter["champion"]["value"] == pytest.approx(float(champion.tags["metric.t2v_R1"]))
    assert adapter["previous"] is None and len(adapter["values"]) == 2
    assert zero_shot["verdict"] == "no baseline" and not zero_shot["champion"]["comparable"]  # champion: MV-Adapter

    markdown = (out / "report.md").read_text()
    assert ADAPTER in markdown and "| verdict |" in markdown and "](report.png)" in markdown
    page = (out / "report.html").read_text()
    assert "<table>" in page and 'src="data:image/png;base64,' in page
    assert (out / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    experiment = mlflow.get_experiment_by_name(EXPERIMENT)
    run = mlflow.get_run(results["run_id"])
    assert run.data.tags["vtrlab.kind"] == "regression" and run.data.tags["regression.mode"] == "train"
    assert (
        run.info.status == "FINISHED" and run.data.tags["regression"] == "true" and run.data.tags["verdict"] == "pass"
    )
    assert run.data.metrics[f"{ADAPTER}.t2v_R1_mean"] == pytest.approx(adapter["mean"])
    assert run.data.metrics[f"{ADAPTER}.t2v_R1_std"] == pytest.approx(adapter["std"])
    assert run.data.metrics[f"{ADAPTER}.verdict"] == 1.0
    reports = {a.path for a in mlflow.list_artifacts(run.info.run_id, "report")}
    assert {"report/report.md", "report/report.html", "report/report.png", "report/results.json"} <= reports

    children = mlflow.search_runs([experiment.experiment_id], f"tags.`mlflow.parentRunId` = '{run.info.run_id}'")
    assert len(children) == 3  # MV-Adapter x 2 seeds, zero-shot x 1
    by_entry = {}
    for child in children:
        tags = child.data.tags
        assert child.info.status == "FINISHED" and tags["backbone"] == "vtr-tiny" and tags["benchmark"] == "synthetic"
        by_entry.setdefault(tags["entry"], {})[int(tags["seed"])] = child
    assert sorted(by_entry[ADAPTER]) == [0, 1] and sorted(by_entry[ZERO_SHOT]) == [0]
    for seed, value in zip(adapter["seeds"], adapter["values"], strict=True):
        child = by_entry[ADAPTER][seed]
        assert child.data.tags["method"] == "mv-adapter" and child.data.params["seed"] == str(seed)
        assert child.data.metrics["t2v_R1"] == pytest.approx(value)  # the run's last epoch is what was compared
        assert {a.path for a in mlflow.list_artifacts(child.info.run_id, "adapter")} == {
            "adapter/adapter_config.json",
            "adapter/adapter_model.safetensors",
        }


def test_the_second_run_compares_with_the_first_and_names_the_regression(world, second):
    result = second["result"]
    assert result.returncode == 1, failure(result)
    outcome = json.loads(result.stdout)  # --json: stdout is the JSON, progress went to stderr
    assert outcome["verdict"] == "regression"
    entries = {e["key"]: e for e in outcome["entries"]}
    first_mean = second["run1"].data.metrics[f"{ADAPTER}.t2v_R1_mean"]
    adapter, zero_shot = entries[ADAPTER], entries[ZERO_SHOT]
    assert adapter["previous"]["run_id"] == second["run1"].info.run_id  # not the fake run: it has no MV-Adapter
    assert adapter["previous"]["value"] == pytest.approx(first_mean)
    assert adapter["mean"] == pytest.approx(first_mean)  # fixed seeds: the same values again
    assert adapter["verdict"] == "pass"
    assert zero_shot["previous"]["run_id"] == second["fake"] and zero_shot["previous"]["value"] == second["high"]
    assert zero_shot["verdict"] == "regression" and "previous" in zero_shot["reason"]

    markdown = (world["root"] / "out2" / "report.md").read_text()
    assert second["run1"].info.run_id[:8] in markdown and re.search(
        rf"\*\*{re.escape(ZERO_SHOT)}\*\*: regression", markdown
    )
    mlflow = MlflowClient(world["tracking_uri"])
    run = mlflow.get_run(outcome["run_id"])
    assert run.data.tags["verdict"] == "regression" and run.data.tags[f"verdict.{ZERO_SHOT}"] == "regression"
    assert run.data.metrics[f"{ZERO_SHOT}.verdict"] == 0.0 and run.data.metrics["regressions"] == 1.0


def test_champions_only_reproduces_the_recorded_metric(world, first):
    mlflow = MlflowClient(world["tracking_uri"])
    champion = mlflow.get_model_version_by_alias(world["model"], "champion")
    before = registry_state(mlflow)
    out = world["root"] / "out-champions"
    args = ["regress", str(world["suite"]), "--champions-only", "--address", world["address"], "--out", str(out)]
    result = run_vtrlab([*args, "--json"], world["env"])
    assert result.returncode == 0, failure(result)
    (entry,) = json.loads(result.stdout)["entries"]
    recorded = float(champion.tags["metric.t2v_R1"])
    assert entry["key"] == "synthetic.champion" and entry["method"] == champion.tags["method"]
    assert entry["extra"]["reference"] == f"{world['model']}/{champion.version}"
    assert entry["champion"]["value"] == pytest.approx(recorded) and entry["verdict"] == "pass"
    assert abs(entry["mean"] - recorded) <= entry["allowed_drop"]
    assert entry["mean"] == pytest.approx(recorded, abs=1e-3)  # the same evaluation as the champion's run
    child = mlflow.get_run(entry["run_ids"][0])
    assert child.data.tags["vtrlab.kind"] == "evaluation" and child.data.tags["model_version"] == str(champion.version)
    assert registry_state(mlflow) == before


def test_a_benchmark_without_a_champion_is_refused_before_anything_runs(world, tmp_path):
    mlflow = MlflowClient(world["tracking_uri"])
    before = registry_state(mlflow)
    experiments = sorted(e.name for e in mlflow.search_experiments())
    runs = len(mlflow.search_runs([e.experiment_id for e in mlflow.search_experiments()]))
    entries = [{"benchmark": "synthetic", "method": "zero-shot"}, {"benchmark": "msvd", "method": "zero-shot"}]
    path = write(tmp_path / "orphan.yaml", suite_dict(world, name="orphan", entries=entries))
    result = run_vtrlab(["regress", str(path), "--address", world["address"]], world["env"], timeout=300)
    assert result.returncode == 3, failure(result)
    message = " ".join(result.stderr.split())
    assert "msvd" in message and "vtrlab-msvd-vtr-tiny" in message and "orphan.yaml" in message
    assert "vtrlab-synthetic" not in message  # the benchmark that has a champion is not blamed
    assert registry_state(mlflow) == before
    assert sorted(e.name for e in mlflow.search_experiments()) == experiments  # no regression-orphan
    assert len(mlflow.search_runs([e.experiment_id for e in mlflow.search_experiments()])) == runs


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"tolerance": {"max_r1_drop": -1}}, "tolerance.max_r1_drop"),
        ({"tolerance": {}}, "tolerance"),
        ({"entries": [{"benchmark": "synthetic", "method": "mv-adapter", "knob": {"width": 8}}]}, "entries.0.knob"),
        ({"entries": [{"benchmark": "synthetic", "method": "lora", "train": {"seed": 3}}]}, "entries.0.train.seed"),
        ({"train": {"epochs": 0}}, "train.epochs"),
        ({"metric": "t2v_MnR"}, "metric"),
    ],
)
def test_a_malformed_suite_names_the_file_and_the_key(world, tmp_path, change, expected):
    path = write(tmp_path / "bad.yaml", suite_dict(world, **change))
    result = run_vtrlab(["regress", str(path)], world["env"], timeout=300)
    assert result.returncode == 2, failure(result)
    message = " ".join(result.stderr.split())
    assert "bad.yaml" in message and f"{expected}:" in message, message


def test_the_shipped_suites_load(tmp_path, monkeypatch):
    from vtrlab.regress.suite import load_suite

    # the quickstart suite names the backbone `make demo` pretrains under $VTRLAB_HOME (checked to exist)
    monkeypatch.setenv("VTRLAB_HOME", str(tmp_path))
    (tmp_path / "backbones").mkdir()
    (tmp_path / "backbones" / "vtr-tiny-synthetic-demo.safetensors").touch()

    paper = load_suite(REPO / "sweeps" / "regression.yaml")
    assert paper.backbone == "ViT-B-16" and paper.seeds == [0, 1, 2]
    assert set(paper.benchmark_names) == {"msrvtt", "msvd", "lsmdc", "didemo", "activitynet"}
    quickstart = load_suite(REPO / "sweeps" / "regression-quickstart.yaml")
    assert quickstart.benchmark_names == ["synthetic"] and quickstart.backbone == "vtr-tiny"


def _regress_invocation(command: str) -> tuple[str, list[str]]:
    """(suite path, flags) of the `vtrlab regress SUITE ...` in a shell command."""
    match = re.search(r"vtrlab regress\s+(\S+)(.*)", command)
    assert match, command
    return match[1].strip("\"'"), re.findall(r"--[a-z-]+", match[2])


def test_the_schedules_run_a_real_suite_with_real_flags():
    help_text = run_vtrlab(["regress", "--help"], {**os.environ, "COLUMNS": "200"}, timeout=120).stdout

    cron = yaml.safe_load((REPO / "jobs" / "regression-raycronjob.yaml").read_text())
    assert cron["apiVersion"] == "ray.io/v1" and cron["kind"] == "RayCronJob"
    assert len(cron["spec"]["schedule"].split()) == 5
    template = cron["spec"]["jobTemplate"]
    assert "rayClusterSpec" in template and template["shutdownAfterJobFinishes"] is True
    suite, flags = _regress_invocation(template["entrypoint"])
    assert (REPO / suite).is_file() and all(flag in help_text for flag in flags)

    workflow = yaml.safe_load((REPO / ".github" / "workflows" / "regression.yml").read_text())
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads the key `on` as True
    assert len(triggers["schedule"][0]["cron"].split()) == 5 and "workflow_dispatch" in triggers
    (job,) = workflow["jobs"].values()
    (command,) = [step["run"] for step in job["steps"] if step.get("id") == "regress"]
    suite, flags = _regress_invocation(command.replace('"$SUITE"', job["env"]["SUITE"].split("'")[1]))
    assert (REPO / suite).is_file() and flags and all(flag in help_text for flag in flags)
    assert "--champions-only" in help_text and "--champions-only" in job["env"]["MODE_FLAG"]
    assert {"MLFLOW_TRACKING_URI", "RAY_ADDRESS"} <= set(job["env"])
    assert any("upload-artifact" in step.get("uses", "") for step in job["steps"])
