"""The registry -> user's code path on a finished sweep (the `workflow` fixture's embedded store):
`vtrlab pull`, `vtrlab.load`, `vtrlab search`, and the errors that leave the registry as it was."""

from __future__ import annotations

import itertools
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient
from safetensors.torch import load_file, save_file

from servers import run_vtrlab
from vtrlab.errors import ArtifactError
from vtrlab.model.artifacts import CONFIG_NAME, WEIGHTS_NAME, file_sha256, read_adapter_config

pytestmark = pytest.mark.slow

SEARCH_CAPTIONS = 10  # captions of the test split queried one by one
TOP = 10
MIN_OWN_IN_TOP = 5  # of SEARCH_CAPTIONS; the champion measured 7 (chance: 10/64 per caption, 1.6 expected)


def flat(text: str) -> str:
    """Output with rich's line wrapping undone."""
    return " ".join(text.split())


def registry_snapshot(uri: str) -> dict:
    """Registered models with their aliases, versions (source, run, tags) and update times."""
    client = MlflowClient(tracking_uri=uri)
    snapshot = {}
    for model in client.search_registered_models():
        versions = client.search_model_versions(f"name='{model.name}'")
        snapshot[model.name] = {
            "aliases": dict(model.aliases),
            "updated": model.last_updated_timestamp,
            "versions": sorted(
                (v.version, v.source, v.run_id, sorted(v.tags.items()), v.last_updated_timestamp) for v in versions
            ),
        }
    return snapshot


def own_ranks(scores: torch.Tensor, owner: torch.Tensor) -> torch.Tensor:
    """0-based rank of each caption's own video, ties counted against it (as `retrieval_metrics` does)."""
    own = scores[torch.arange(len(scores)), owner][:, None]
    return (scores >= own).sum(1) - 1


def no_leftovers(parent: Path) -> list[str]:
    return [p.name for p in parent.iterdir() if ".pull-" in p.name]


@pytest.fixture
def in_process(workflow, monkeypatch) -> dict:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", workflow["tracking_uri"])
    monkeypatch.setenv("VTRLAB_HOME", str(workflow["home"]))
    return workflow


@pytest.fixture(scope="module")
def champion(workflow) -> dict:
    """The champion version as the registry records it."""
    client = MlflowClient(tracking_uri=workflow["tracking_uri"])
    version = client.get_model_version_by_alias(workflow["model"], "champion")
    return {"version": str(version.version), "run_id": version.run_id, "tags": dict(version.tags)}


@pytest.fixture(scope="module")
def index(workflow):
    """The champion loaded through the registry and the test split encoded for search."""
    from vtrlab.hub.load import load_pulled
    from vtrlab.hub.search import RetrievalIndex, retrieval_settings

    with pytest.MonkeyPatch.context() as env:
        env.setenv("MLFLOW_TRACKING_URI", workflow["tracking_uri"])
        env.setenv("VTRLAB_HOME", str(workflow["home"]))
        encoder, pulled = load_pulled(f"{workflow['model']}@champion")
    settings = retrieval_settings(pulled)
    return {
        "pulled": pulled,
        "settings": settings,
        "index": RetrievalIndex.build(encoder, workflow["data"], "test", settings=settings),
    }


# ---- pull ------------------------------------------------------------------------------------------


def test_pull_by_alias_then_by_version_replaces_cleanly(workflow, champion, tmp_path):
    out = tmp_path / "champion"
    result = run_vtrlab(["pull", f"{workflow['model']}@champion", "--out", str(out)], workflow["env"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == sorted([CONFIG_NAME, WEIGHTS_NAME, "registry.json"])
    config = read_adapter_config(out)
    checksum = file_sha256(out / WEIGHTS_NAME)
    assert checksum == config.weights_sha256
    stdout = flat(result.stdout)
    assert f"{checksum} verified" in stdout
    assert f"fingerprint {config.backbone.fingerprint} verified" in stdout
    assert f"vtrlab.load('{workflow['model']}@champion')" in stdout
    record = json.loads((out / "registry.json").read_text())
    assert (record["model"], record["version"], record["run_id"]) == (
        workflow["model"],
        champion["version"],
        champion["run_id"],
    )
    assert record["aliases"] == ["champion"]
    assert record["metrics"]["t2v_R1"] == pytest.approx(float(champion["tags"]["metric.t2v_R1"]))
    assert record["run_params"]["num_frames"] and record["tracking_uri"] == workflow["tracking_uri"]
    (out / "stale.txt").write_text("from an earlier pull")  # a re-pull replaces the whole directory

    again = run_vtrlab(
        ["pull", f"{workflow['model']}/{champion['version']}", "--out", str(out), "--json"], workflow["env"]
    )
    assert again.returncode == 0, again.stderr[-3000:]
    payload = json.loads(again.stdout)
    assert payload["version"] == champion["version"] and payload["path"] == str(out)
    assert payload["weights_sha256"] == checksum
    assert sorted(p.name for p in out.iterdir()) == sorted([CONFIG_NAME, WEIGHTS_NAME, "registry.json"])
    assert no_leftovers(tmp_path) == []


def test_pull_refuses_a_tampered_artifact(workflow, champion, tmp_path):
    """A copy of the store gets a version whose tensor file differs from its config's checksum."""
    from vtrlab.hub import pull

    copy_db = tmp_path / "mlflow.db"
    with (
        sqlite3.connect(f"file:{workflow['home'] / 'mlflow.db'}?mode=ro", uri=True) as src,
        sqlite3.connect(copy_db) as dst,
    ):
        src.backup(dst)
    uri = f"sqlite:///{copy_db}"
    good = pull(f"{workflow['model']}@champion", tmp_path / "good", tracking_uri=uri)
    tampered = tmp_path / "tampered"
    tampered.mkdir()
    (tampered / CONFIG_NAME).write_text((good.path / CONFIG_NAME).read_text())
    tensors = load_file(str(good.path / WEIGHTS_NAME))
    name = sorted(tensors)[0]
    tensors[name] = tensors[name] + 1.0
    save_file(tensors, str(tampered / WEIGHTS_NAME))

    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("tamper", artifact_location=(tmp_path / "artifacts").as_uri())
    run = client.create_run(experiment)
    client.log_artifacts(run.info.run_id, str(tampered), artifact_path="adapter")
    client.set_terminated(run.info.run_id)
    bad = client.create_model_version(workflow["model"], f"runs:/{run.info.run_id}/adapter", run.info.run_id)

    out = tmp_path / "pulled"
    expected = read_adapter_config(good.path).weights_sha256
    message = rf"version {bad.version} \(runs:/{run.info.run_id}/adapter\): {WEIGHTS_NAME} has sha256:\w+, but "
    with pytest.raises(ArtifactError, match=message + rf"{CONFIG_NAME} records {expected} \(checksum mismatch"):
        pull(f"{workflow['model']}/{bad.version}", out, tracking_uri=uri)
    assert not out.exists() and no_leftovers(tmp_path) == []


def test_pull_refuses_other_backbone_weights(workflow, tmp_path):
    tensors = load_file(workflow["weights"])
    name = sorted(tensors)[0]
    tensors[name] = tensors[name] + 0.01
    other = tmp_path / "other.safetensors"
    save_file(tensors, str(other))
    out = tmp_path / "pulled"
    result = run_vtrlab(
        ["pull", f"{workflow['model']}@champion", "--out", str(out), "--weights", str(other)], workflow["env"]
    )
    assert result.returncode == 2, result.stdout + result.stderr
    stderr = flat(result.stderr)
    from vtrlab.model.backbone import load_backbone

    expected = load_backbone("vtr-tiny", workflow["weights"])[1].fingerprint
    actual = load_backbone("vtr-tiny", other)[1].fingerprint
    assert expected in stderr and actual in stderr and str(other) in stderr
    assert not out.exists() and no_leftovers(tmp_path) == []


# ---- load ------------------------------------------------------------------------------------------


def test_load_champion_reproduces_its_recorded_metric(in_process, champion, index):
    import vtrlab
    from vtrlab.data import make_eval_loader
    from vtrlab.hub.load import cache_dir, load_pulled
    from vtrlab.train.evaluate import evaluate

    encoder, settings = vtrlab.load(f"{in_process['model']}@champion"), index["settings"]
    assert not encoder.training and encoder.method == index["pulled"].method
    assert (settings.num_frames, settings.max_words) == (12, 32)  # what the trial ran with (the card's)
    assert encoder.evaluation == read_adapter_config(index["pulled"].path).evaluation  # the artifact records them
    assert (encoder.evaluation.benchmark, encoder.evaluation.split) == ("synthetic", "test")
    loader = make_eval_loader(
        in_process["data"],
        "test",
        batch_size=settings.batch_size,
        num_frames=settings.num_frames,
        max_words=settings.max_words,
    )
    metrics = evaluate(encoder, loader)
    assert metrics["t2v_R1"] == pytest.approx(float(champion["tags"]["metric.t2v_R1"]), abs=1e-3)
    assert metrics["v2t_R1"] == pytest.approx(float(champion["tags"]["metric.v2t_R1"]), abs=1e-3)

    record = cache_dir(in_process["model"], champion["version"]) / "registry.json"
    before = record.stat().st_mtime_ns
    _, pulled = load_pulled(in_process["model"])  # bare name = champion; the cached pull is reused
    assert pulled.version == champion["version"] and record.stat().st_mtime_ns == before


def test_import_vtrlab_stays_light():
    code = "import sys, vtrlab; assert 'torch' not in sys.modules and 'mlflow' not in sys.modules; print(vtrlab.load)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0 and "function load" in result.stdout, result.stderr


# ---- search ----------------------------------------------------------------------------------------


def test_search_by_text_finds_the_captions_own_videos(workflow, champion, index):
    idx = index["index"]
    captions = [c for cs in idx.embeddings.captions for c in cs]
    owner = idx.embeddings.owner
    scores = idx.text_scores(captions)
    ranks = own_ranks(scores, owner)
    for k in (1, 5, 10):  # every caption as a query reproduces the registered T2V recall
        recall = (ranks < k).float().mean().item() * 100
        assert recall == pytest.approx(float(champion["tags"][f"metric.t2v_R{k}"]), abs=100 / len(captions) + 1e-3)
    own_in_top = int((ranks[:SEARCH_CAPTIONS] < TOP).sum())
    assert own_in_top >= MIN_OWN_IN_TOP, f"own video in top {TOP} for {own_in_top}/{SEARCH_CAPTIONS} captions"

    query = next(i for i in range(SEARCH_CAPTIONS) if ranks[i] < 5)
    hits = idx.text_to_videos(captions[query], k=5)
    args = ["search", "--model", f"{workflow['model']}@champion", "--shards", workflow["data"]]
    result = run_vtrlab([*args, "--query", captions[query], "--k", "5", "--json"], workflow["env"])
    assert result.returncode == 0, result.stderr[-3000:]
    payload = json.loads(result.stdout)
    results = payload["results"]
    assert [r["rank"] for r in results] == [1, 2, 3, 4, 5]
    assert all(a["score"] >= b["score"] for a, b in itertools.pairwise(results))
    assert [r["video_id"] for r in results] == [h.video_id for h in hits]
    own = idx.video_ids[int(owner[query])]
    assert own in [r["video_id"] for r in results]
    assert next(r for r in results if r["video_id"] == own)["captions"] == idx.embeddings.captions[int(owner[query])]


def test_search_by_video_marks_its_own_captions(workflow):
    from vtrlab.data import make_eval_loader

    batch = next(iter(make_eval_loader(workflow["data"], "test_multi", batch_size=8, num_frames=2, max_words=32)))
    video, own_captions = batch["video_id"][3], batch["captions"][3]
    assert len(own_captions) == 3
    args = ["search", "--model", workflow["model"], "--shards", workflow["data"], "--split", "test_multi"]
    result = run_vtrlab([*args, "--video", video, "--k", "1000", "--json"], workflow["env"])
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads(result.stdout)["results"]
    assert len(results) == 96  # every caption of the split, ranked
    assert all(r["own"] == (r["video_id"] == video) for r in results)
    assert sorted(r["caption"] for r in results if r["own"]) == sorted(own_captions)

    table = run_vtrlab([*args, "--video", video, "--k", "96"], workflow["env"])
    assert table.returncode == 0, table.stderr[-3000:]
    assert table.stdout.count(f"{video} (own)") == 3


def test_search_unknown_video_names_it(workflow):
    args = ["search", "--model", workflow["model"], "--shards", workflow["data"], "--video", "no-such-clip"]
    result = run_vtrlab(args, workflow["env"])
    assert result.returncode == 3, result.stdout + result.stderr
    stderr = flat(result.stderr)
    assert "'no-such-clip'" in stderr and "'test'" in stderr and workflow["data"] in stderr


def test_search_with_a_text_conditioned_head_agrees_with_evaluate(synth_small):
    """RAP with text-conditioned selection pools the videos per query: the index (shared encoding with
    evaluate) ranks every caption's video as evaluation does."""
    from vtrlab.data import make_eval_loader
    from vtrlab.hub.search import RetrievalIndex, RetrievalSettings
    from vtrlab.model.factory import create_model
    from vtrlab.train.evaluate import evaluate

    torch.manual_seed(0)
    encoder = create_model("rap", "vtr-tiny", knobs={"selection": "text-conditioned"}).eval()
    settings = RetrievalSettings(split="test_multi", num_frames=4, max_words=32, batch_size=16)
    idx = RetrievalIndex.build(encoder, synth_small, settings=settings)
    assert idx.videos.text_conditioned
    loader = make_eval_loader(synth_small, "test_multi", batch_size=16, num_frames=4, max_words=32)
    metrics = evaluate(encoder, loader)
    captions = [c for cs in idx.embeddings.captions for c in cs]
    scores = idx.text_scores(captions)
    owner = idx.embeddings.owner
    ranks = own_ranks(scores, owner)
    for k in (1, 5, 10):
        recall = (ranks < k).float().mean().item() * 100
        assert recall == pytest.approx(metrics[f"t2v_R{k}"], abs=100 / len(captions) + 1e-3)
    hits = idx.video_to_texts(idx.video_ids[0], k=5)
    assert len(hits) == 5 and all(a.score >= b.score for a, b in itertools.pairwise(hits))


# ---- errors leave the registry as it was -----------------------------------------------------------


@pytest.mark.parametrize(
    ("reference", "named", "listed"),
    [
        ("no-such-model@champion", "'no-such-model'", "vtrlab-synthetic-vtr-tiny"),
        ("vtrlab-synthetic-vtr-tiny/99", "no version 99", "champion -> 1"),
        ("models:/vtrlab-synthetic-vtr-tiny@nightly", "no alias 'nightly'", "versions: 1"),
    ],
)
def test_unknown_model_version_or_alias_exits_3(workflow, tmp_path, reference, named, listed):
    before = registry_snapshot(workflow["tracking_uri"])
    result = run_vtrlab(["pull", reference, "--out", str(tmp_path / "out")], workflow["env"])
    assert result.returncode == 3, result.stdout + result.stderr
    stderr = flat(result.stderr)
    assert named in stderr and listed in stderr
    assert registry_snapshot(workflow["tracking_uri"]) == before
    assert not (tmp_path / "out").exists()


def test_search_with_unknown_model_exits_3(workflow):
    before = registry_snapshot(workflow["tracking_uri"])
    args = ["search", "--model", "no-such-model", "--shards", workflow["data"], "--query", "a red circle"]
    result = run_vtrlab(args, workflow["env"])
    assert result.returncode == 3 and "'no-such-model'" in flat(result.stderr), result.stderr
    assert registry_snapshot(workflow["tracking_uri"]) == before


@pytest.mark.parametrize("reference", ["vtrlab-synthetic-vtr-tiny@", "vtrlab-synthetic-vtr-tiny/latest", "a b"])
def test_malformed_reference_exits_2(workflow, tmp_path, reference):
    before = registry_snapshot(workflow["tracking_uri"])
    result = run_vtrlab(["pull", reference, "--out", str(tmp_path / "out")], workflow["env"])
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"model reference {reference!r}" in flat(result.stderr) and "MODEL@ALIAS" in result.stderr
    assert registry_snapshot(workflow["tracking_uri"]) == before


def test_search_takes_split_frames_and_words_from_the_artifact(synth_small, tmp_path, monkeypatch):
    """A loaded adapter is searched with the evaluation its artifact records (not `test`, not the shards'
    card), through `evaluation_settings`; explicit values override it; an artifact without them is refused."""
    import vtrlab.data
    from model_helpers import tiny_model
    from vtrlab.hub.pull import PulledAdapter
    from vtrlab.hub.search import RetrievalIndex, RetrievalSettings, retrieval_settings
    from vtrlab.model.artifacts import EvaluationSettings, load_adapter_into, save_adapter

    recorded = EvaluationSettings(benchmark="synthetic", split="test_multi", num_frames=3, max_words=16, batch_size=8)
    save_adapter(tiny_model("bottleneck", width=8), tmp_path / "adapter", evaluation=recorded)
    save_adapter(tiny_model("bottleneck", width=8), tmp_path / "bare")
    pulled = PulledAdapter(tmp_path / "adapter", "m", "1", [], "run", "src", "bottleneck", {}, {}, "sha", None)
    assert retrieval_settings(pulled) == RetrievalSettings("test_multi", 3, 16, 8)
    assert retrieval_settings(pulled, split="test", num_frames=2, max_words=32) == RetrievalSettings("test", 2, 32, 8)

    loads, real = [], vtrlab.data.make_eval_loader
    monkeypatch.setattr(vtrlab.data, "make_eval_loader", lambda *a, **kw: loads.append((a, kw)) or real(*a, **kw))
    encoder = load_adapter_into(tiny_model("bottleneck", width=8), tmp_path / "adapter")
    index = RetrievalIndex.build(encoder, synth_small, texts=False)
    assert (index.split, index.max_words) == ("test_multi", 16)
    assert loads[-1] == ((synth_small, "test_multi"), {"batch_size": 8, "num_frames": 3, "max_words": 16})
    assert RetrievalIndex.build(encoder, synth_small, "test", texts=False).split == "test"  # an explicit split wins

    bare = PulledAdapter(tmp_path / "bare", "m", "2", [], "run", "src", "bottleneck", {}, {}, "sha", None)
    with pytest.raises(ArtifactError, match=r"bare/adapter_config\.json: key evaluation is missing"):
        retrieval_settings(bare)


def test_mlflow_pyfunc_loads_the_champion_as_any_mlflow_user_would(in_process, champion):
    """The registered version is an MLflow logged model (its Models entry, its page's model link), and the
    standard `mlflow.pyfunc.load_model("models:/NAME@champion")` gives the adapter's own embeddings."""
    import vtrlab
    from vtrlab.model.tokenizer import tokenize

    client = MlflowClient(in_process["tracking_uri"])
    version = client.get_model_version_by_alias(in_process["model"], "champion")
    assert version.source.startswith("models:/")  # the version's source is the logged model
    logged = client.get_logged_model(version.source.removeprefix("models:/"))
    assert logged.source_run_id == champion["run_id"] and logged.name == "adapter_pyfunc"
    captions = ["a red square slides left, then a blue circle appears", "a green triangle disappears"]
    uri = f"models:/{in_process['model']}@champion"
    script = (
        "import json, sys, mlflow.pyfunc, pandas\n"
        f"model = mlflow.pyfunc.load_model({uri!r})\n"
        "rows = model.predict(pandas.DataFrame({'text': json.loads(sys.argv[1])}))\n"
        "print(json.dumps(rows.tolist()))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, json.dumps(captions)],
        env={**in_process["env"], "MLFLOW_TRACKING_URI": in_process["tracking_uri"]},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    embedded = torch.tensor(json.loads(done.stdout.strip().splitlines()[-1]))
    encoder = vtrlab.load(f"{in_process['model']}@champion")
    with torch.no_grad():
        expected = encoder.encode_text(tokenize(captions, encoder.evaluation.max_words))
    assert embedded.shape == expected.shape and torch.allclose(embedded, expected, atol=1e-5)
