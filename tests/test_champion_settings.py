"""`vtrlab regress --champions-only` plans each champion's evaluation from its artifact's recorded settings,
read from a real MLflow registry (SQLite store and file artifacts in a temporary folder; no Ray)."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from model_helpers import tiny_model
from vtrlab.errors import ArtifactError
from vtrlab.model.artifacts import EvaluationSettings, save_adapter
from vtrlab.regress.champions import eval_plan
from vtrlab.regress.suite import Entry, Suite, Tolerance
from vtrlab.tracking.client import Tracker
from vtrlab.tracking.records import VersionRecord

pytestmark = pytest.mark.slow
RECORDED = EvaluationSettings(benchmark="synthetic", split="test_multi", num_frames=4, max_words=16, batch_size=8)


@pytest.fixture(scope="module")
def registry(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("registry")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("champions", artifact_location=(root / "artifacts").as_uri())
    client.create_registered_model("vtrlab-synthetic-vtr-tiny")

    def register(evaluation: EvaluationSettings | None):
        folder = root / f"adapter-{len(list(root.iterdir()))}"
        save_adapter(tiny_model("bottleneck", width=8), folder, evaluation=evaluation)
        run = client.create_run(experiment)
        client.log_artifacts(run.info.run_id, str(folder), artifact_path="adapter")
        client.set_terminated(run.info.run_id)
        created = client.create_model_version(
            "vtrlab-synthetic-vtr-tiny", f"runs:/{run.info.run_id}/adapter", run.info.run_id
        )
        return Tracker(uri).version(created.name, created.version)  # what the registry hands the planner

    return {"uri": uri, "register": register}


def suite() -> Suite:
    return Suite(
        name="champions",
        data={"synthetic": "/data/synthetic"},
        tolerance=Tolerance(max_r1_drop=1.0),
        entries=[Entry(benchmark="synthetic", method="bottleneck")],
        train={"eval_batch_size": 64, "num_frames": 12},  # a training setting the evaluation must not take
    )


def test_the_plan_repeats_the_recorded_evaluation(registry):
    version = registry["register"](RECORDED)
    plan = eval_plan(suite(), "synthetic", version, registry["uri"])
    assert (plan.split, plan.num_frames, plan.max_words, plan.batch_size) == ("test_multi", 4, 16, 8)
    assert plan.reference == f"vtrlab-synthetic-vtr-tiny/{version.version}" and plan.data == "/data/synthetic"


def test_a_champion_of_another_benchmark_or_without_settings_is_named(registry):
    other = registry["register"](RECORDED.model_copy(update={"benchmark": "msrvtt"}))
    with pytest.raises(ArtifactError, match=r"evaluated on benchmark 'msrvtt' \(key evaluation\.benchmark\)"):
        eval_plan(suite(), "synthetic", other, registry["uri"])
    bare = registry["register"](None)
    with pytest.raises(ArtifactError, match=rf"version {bare.version} .*adapter_config\.json\): key evaluation is"):
        eval_plan(suite(), "synthetic", bare, registry["uri"])


def test_an_unreadable_source_is_named(registry, tmp_path: Path):
    version = registry["register"](RECORDED)
    broken = VersionRecord(version.model, version.version, version.run_id, source=(tmp_path / "gone").as_uri())
    with pytest.raises(ArtifactError, match=rf"version {version.version} \(.*gone/adapter_config\.json\): cannot read"):
        eval_plan(suite(), "synthetic", broken, registry["uri"])
