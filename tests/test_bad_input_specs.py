"""The malformed-input corpus, specs and options: sweep specs and regression suites made by mutating the
shipped ones (one key each), `vtrlab train` / `reproduce` / `compare` option sets, and YAML that is not a
spec at all. Every case is refused before Ray starts (a Ray start fails the case), with exit 2 (3: not
found), one line naming the culprit, no traceback, no sweep or regression folder and no MLflow run left.

A new input kind is one line in its family's list (see `tests/badinput.py` for the contract)."""

from __future__ import annotations

import copy
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from badinput import BadInput, check

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "sweeps" / "quickstart.yaml"
SUITE = ROOT / "sweeps" / "regression-quickstart.yaml"
Edit = Callable[[dict[str, Any], Path], Any]


# ---- how cases are made --------------------------------------------------------------------------


def home(folder: Path) -> Path:
    return folder.parent / "home"


def store(folder: Path) -> Path:
    return home(folder) / "mlflow.db"


def mutated(base: Path, edit: Edit, name: str) -> Callable[[Path], Path]:
    """A writer of `base` with `edit(data, folder)` applied (it changes `data` in place)."""

    def write(folder: Path) -> Path:
        data = yaml.safe_load(base.read_text())
        edit(data, folder)
        path = folder / name
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    return write


def at(path: str, value: Any) -> Edit:
    """Set the dotted key `path` (created as needed) to `value`."""

    def edit(data: dict[str, Any], folder: Path) -> None:
        *parents, last = path.split(".")
        node = data
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
        node[int(last) if isinstance(node, list) else last] = value

    return edit


def dropped(path: str) -> Edit:
    def edit(data: dict[str, Any], folder: Path) -> None:
        *parents, last = path.split(".")
        node = data
        for key in parents:
            node = node[key]
        del node[last]

    return edit


def leftovers(folder: Path) -> list[Path]:
    """What a refused command must not leave: a sweep's or regression's state, checkpoints, reports."""
    return [home(folder) / name for name in ("sweeps", "regressions", "ray_results", "reproduce", "reports")]


def sweep(id: str, edit: Edit, culprit: str, code: int = 2, extra: tuple[str, ...] = ()) -> BadInput:
    write = mutated(QUICKSTART, edit, "spec.yaml")
    return BadInput(id, lambda d: ["sweep", str(write(d)), *extra], culprit, code, leftovers)


def suite(id: str, edit: Edit, culprit: str, code: int = 2, champion: bool = False) -> BadInput:
    """A mutated regression suite; `champion`: the registry has the champion it compares with (a suite
    whose benchmark has none is refused before its data is read, exit 3)."""
    write = mutated(SUITE, edit, "suite.yaml")

    def argv(folder: Path) -> list[str]:
        if champion:
            register_champion(folder)
        return ["regress", str(write(folder))]

    return BadInput(f"suite-{id}", argv, culprit, code, leftovers)


def register_champion(folder: Path, model: str = "vtrlab-synthetic-vtr-tiny") -> None:
    """A champion version of `model` in the case's MLflow store (no run: the corpus counts runs)."""
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{store(folder)}")
    client.create_registered_model(model)
    version = client.create_model_version(model, source=str(folder / "adapter"))
    client.set_registered_model_alias(model, "champion", version.version)


def train(id: str, options: list[str] | Callable[[Path], list[str]], culprit: str, code: int = 2) -> BadInput:
    def argv(folder: Path) -> list[str]:
        extra = options(folder) if callable(options) else options
        return ["train", "--benchmark", "synthetic", "--method", "bottleneck", *extra]

    return BadInput(f"train-{id}", argv, culprit, code, leftovers)


def raw(id: str, text: str | bytes, culprit: str | None = None, command: str = "sweep") -> BadInput:
    """A spec file with exactly this content."""

    def argv(folder: Path) -> list[str]:
        path = folder / "spec.yaml"
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        return [command, str(path)]

    return BadInput(f"yaml-{command}-{id}", argv, culprit or (lambda d: str(d / "spec.yaml")), 2, leftovers)


def data_folder(manifest: str | None) -> Callable[[Path], str]:
    """A dataset folder holding `manifest` as its manifest.json (None: an empty folder)."""

    def make(folder: Path) -> str:
        path = folder / "shards"
        path.mkdir(exist_ok=True)
        if manifest is not None:
            (path / "manifest.json").write_text(manifest)
        return str(path)

    return make


def with_data(make: Callable[[Path], str]) -> Edit:
    def edit(data: dict[str, Any], folder: Path) -> None:
        data["data"] = {"synthetic": make(folder)}

    return edit


def search(method: str, key: str, dimension: Any) -> Edit:
    return at(f"methods.{method}.search.{key}", dimension)


GOOD_MANIFEST = json.dumps(  # a valid manifest with a train split only (no shards)
    {
        "format": "vtrlab-shards/1",
        "name": "synthetic",
        "version": "0",
        "options": {},
        "splits": {"train": {"protocol": "multi-caption", "samples": 0, "videos": 0, "captions": 0, "shards": []}},
    }
)
BOMB = "a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n" + (
    "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
)

# ---- the corpus ----------------------------------------------------------------------------------

SPEC_STRUCTURE = [
    sweep("unknown-top-key", at("colour", "red"), "colour"),
    sweep("bad-name", at("name", "my sweep!"), "name"),
    sweep("no-benchmarks", at("benchmarks", []), "benchmarks"),
    sweep("unknown-benchmark", at("benchmarks", ["atlantis"]), "atlantis"),
    sweep("benchmarks-not-a-list", at("benchmarks", "synthetic"), "benchmarks"),
    sweep("no-methods", at("methods", {}), "methods"),
    sweep("unknown-method", at("methods.magic", {}), "magic"),
    sweep("plan-unknown-key", at("methods.bottleneck.colour", 1), "methods.bottleneck.colour"),
    sweep("plan-not-a-mapping", at("methods.bottleneck", [1, 2]), "methods.bottleneck"),
    sweep("data-of-another-benchmark", at("data", {"msrvtt": "/tmp/x"}), "data.msrvtt"),
    sweep("per-benchmark-not-run", at("per_benchmark", {"msrvtt": {"train": {"epochs": 1}}}), "per_benchmark.msrvtt"),
    sweep(
        "per-benchmark-method-not-run",
        at("per_benchmark", {"synthetic": {"methods": {"lora": {}}}}),
        "per_benchmark.synthetic.methods.lora",
    ),
    sweep("no-seeds", at("seeds", []), "seeds"),
    sweep("register-best-not-bool", at("register_best", "maybe"), "register_best"),
    sweep("storage-unset-variable", at("storage", "$VTRLAB_NO_SUCH_VAR/x"), "VTRLAB_NO_SUCH_VAR"),
    sweep("data-unset-variable", at("data", {"synthetic": "${VTRLAB_NO_SUCH_VAR}/d"}), "VTRLAB_NO_SUCH_VAR"),
    sweep("name-missing", dropped("name"), "name"),
    sweep("benchmark-huge-name", at("benchmarks", ["b" * 100_000]), "benchmarks"),
    sweep("description-not-text", at("description", {"a": 1}), "description"),
]

KNOBS = [
    sweep("unknown-knob", at("methods.bottleneck.knobs.colour", 1), "colour"),
    sweep("width-zero", at("methods.bottleneck.knobs.width", 0), "width"),
    sweep("width-negative", at("methods.bottleneck.knobs.width", -4), "width"),
    sweep("width-a-word", at("methods.bottleneck.knobs.width", "wide"), "width"),
    sweep("rap-sparsity-above-one", at("methods.rap.knobs", {"sparsity": 1.5}), "sparsity"),
    sweep("rap-selection-unknown", at("methods.rap.knobs", {"selection": "psychic"}), "selection"),
    sweep("knobs-not-a-mapping", at("methods.bottleneck.knobs", [1, 2]), "methods.bottleneck.knobs"),
    sweep("zero-shot-has-no-knobs", at("methods.zero-shot", {"knobs": {"width": 8}}), "width"),
    sweep("mv-cmt-layers-not-a-list", at("methods.mv-adapter.knobs.cmt_layers", "last"), "cmt_layers"),
    sweep("mv-max-frames-below-data", at("methods.mv-adapter.knobs.max_frames", 2), "max_frames"),
    sweep(
        "per-benchmark-knob-unknown",
        at("per_benchmark", {"synthetic": {"methods": {"bottleneck": {"knobs": {"colour": 1}}}}}),
        "colour",
    ),
    sweep("knob-huge-value", at("methods.bottleneck.knobs.width", "w" * 100_000), "width"),
]

SEARCH_RANGES = [
    sweep("width-range-from-zero", search("mv-adapter", "width", {"int": [0, 64]}), "width"),
    sweep("width-choice-with-zero", search("mv-adapter", "width", {"choice": [16, 0]}), "width"),
    sweep("inverted-range", search("mv-adapter", "width", {"int": [64, 16]}), "methods.mv-adapter.search.width"),
    sweep("empty-range", search("mv-adapter", "width", {"int": [16, 16]}), "methods.mv-adapter.search.width"),
    sweep("sparsity-range-above-one", search("rap", "sparsity", {"float": [0.25, 1.5]}), "sparsity"),
    sweep("empty-choice", search("rap", "rank", {"choice": []}), "methods.rap.search.rank"),
    sweep("choice-not-a-list", search("rap", "rank", {"choice": 4}), "methods.rap.search.rank"),
    sweep("two-kinds", search("rap", "rank", {"int": [2, 8], "choice": [4]}), "methods.rap.search.rank"),
    sweep("no-kind", search("rap", "rank", {"log": True}), "methods.rap.search.rank"),
    sweep("dimension-unknown-key", search("rap", "rank", {"int": [2, 8], "stepp": 2}), "stepp"),
    sweep("log-from-zero", search("mv-adapter", "lr", {"float": [0, 1e-3], "log": True}), "search.lr"),
    sweep("lr-range-negative", search("mv-adapter", "lr", {"float": [-1e-3, 1e-3]}), "lr"),
    sweep("epochs-range-from-zero", search("mv-adapter", "epochs", {"int": [0, 3]}), "epochs"),
    sweep("unknown-search-key", search("mv-adapter", "colour", {"choice": [1, 2]}), "colour"),
    sweep("rank-choice-a-word", search("rap", "rank", {"choice": [4, "eight"]}), "rank"),
    sweep("range-of-words", search("rap", "rank", {"int": ["a", "b"]}), "methods.rap.search.rank"),
    sweep("batch-choice-not-divisible", search("mv-adapter", "workers", {"choice": [1, 3]}), "workers"),
]

TRAINING_FIELDS = [
    sweep("epochs-negative", at("train.epochs", -1), "train.epochs"),
    sweep("workers-zero", at("train.workers", 0), "train.workers"),
    sweep("batch-zero", at("train.batch_size", 0), "train.batch_size"),
    sweep("batch-not-divisible-by-workers", at("train.workers", 3), "batch_size"),
    sweep("unknown-training-field", at("train.learning_rate", 1e-3), "train.learning_rate"),
    sweep("warmup-one", at("train.warmup_ratio", 1.0), "train.warmup_ratio"),
    sweep("unknown-optimizer", at("train.optimizer", "sgd"), "train.optimizer"),
    sweep("lr-a-word", at("train.lr", "fast"), "train.lr"),
    sweep("method-lr-negative", at("methods.bottleneck.train.lr", -1), "methods.bottleneck.train.lr"),
    sweep("per-benchmark-epochs-zero", at("per_benchmark", {"synthetic": {"train": {"epochs": 0}}}), "epochs"),
    sweep("benchmark-as-training-field", at("train.benchmark", "msrvtt"), "train.benchmark"),
    sweep("grad-clip-unknown", at("train.grad_clip", "sideways"), "train.grad_clip"),
    sweep("gpus-negative", at("train.gpus_per_worker", -1), "train.gpus_per_worker"),
    sweep("frames-zero", at("train.num_frames", 0), "train.num_frames"),
    sweep("cpus-zero", at("train.cpus_per_worker", 0), "train.cpus_per_worker"),
    sweep("train-not-a-mapping", at("train", [1]), "train"),
]

BUDGET_OBJECTIVE = [
    sweep("trials-zero", at("budget.trials", 0), "budget.trials"),
    sweep("budget-unknown-key", at("budget.trails", 3), "budget.trails"),
    sweep("reduction-factor-one", at("budget.reduction_factor", 1), "budget.reduction_factor"),
    sweep("max-concurrent-zero", at("budget.max_concurrent", 0), "budget.max_concurrent"),
    sweep("cpus-per-trial-zero", at("budget.cpus_per_trial", 0), "budget.cpus_per_trial"),
    sweep("retries-negative", at("budget.trial_retries", -1), "budget.trial_retries"),
    sweep("grace-zero", at("budget.grace_period", 0), "budget.grace_period"),
    sweep("unknown-metric", at("objective.metric", "accuracy"), "objective.metric"),
    sweep("mode-against-metric", at("objective.mode", "min"), "objective"),
    sweep("unknown-second", at("objective.second", "flops"), "objective.second"),
    sweep("unknown-sampler", at("objective.sampler", "random"), "objective.sampler"),
]

BACKBONE_DATA_STORAGE = [
    sweep("unknown-backbone", at("backbone", "ViT-Nope-99"), "ViT-Nope-99"),
    sweep("weights-file-missing", at("weights", "/nonexistent/vtr-tiny.safetensors"), "/nonexistent/vtr-tiny"),
    sweep("data-folder-missing", at("data", {"synthetic": "/nonexistent/shards"}), "/nonexistent/shards"),
    sweep("data-folder-empty", with_data(data_folder(None)), "shards"),
    sweep("manifest-not-json", with_data(data_folder("{not json")), "manifest.json"),
    sweep("manifest-other-format", with_data(data_folder('{"format": "csv"}')), "manifest.json"),
    sweep("manifest-without-eval-split", with_data(data_folder(GOOD_MANIFEST)), "'test'"),
    sweep("storage-a-file", lambda d, f: (f / "file").write_text("x") and d.update(storage=str(f / "file")), "file"),
    sweep("storage-unknown-scheme", at("storage", "gopher://host/x"), "gopher://host/x"),
]

SWEEP_OPTIONS = [
    sweep("resume-nothing", lambda d, f: None, "nothing to resume", extra=("--resume",)),
    sweep("storage-option-not-writable", lambda d, f: None, "/dev/null/x", extra=("--storage", "/dev/null/x")),
    BadInput("sweep-spec-missing", lambda d: ["sweep", str(d / "nope.yaml")], "nope.yaml", leftover=leftovers),
    BadInput("sweep-no-spec-argument", lambda d: ["sweep"], "'spec'"),
    BadInput("sweep-unknown-option", lambda d: ["sweep", str(QUICKSTART), "--colour"], "--colour"),
]

SUITES = [
    suite("unknown-key", at("colour", "red"), "colour"),
    suite("no-entries", at("entries", []), "entries"),
    suite("entry-unknown-method", at("entries.0.method", "magic"), "magic"),
    suite("entry-unknown-benchmark", at("entries.0.benchmark", "atlantis"), "atlantis"),
    suite("entry-width-zero", at("entries.0.knobs.width", 0), "width"),
    suite("entry-unknown-knob", at("entries.0.knobs.colour", 1), "colour"),
    suite("entry-seed-field", at("entries.0.train.seed", 1), "entries.0.train.seed"),
    suite("suite-seed-field", at("train.seed", 1), "train.seed"),
    suite("repeated-seeds", at("seeds", [0, 0]), "seeds"),
    suite("no-seeds", at("seeds", []), "seeds"),
    suite("empty-tolerance", at("tolerance", {}), "tolerance"),
    suite("negative-tolerance", at("tolerance.max_r1_drop", -1), "tolerance.max_r1_drop"),
    suite("lower-is-better-metric", at("metric", "t2v_MnR"), "metric"),
    suite("sigmas-with-one-seed", lambda d, f: d.update(seeds=[0], tolerance={"seed_sigmas": 2.0}), "seed_sigmas"),
    suite("duplicate-entries", lambda d, f: d["entries"].append(copy.deepcopy(d["entries"][0])), "entries"),
    suite("entry-bad-name", at("entries.0.name", "a b"), "entries.0.name"),
    suite("entry-unknown-key", at("entries.0.colour", 1), "entries.0.colour"),
    suite("epochs-negative", at("train.epochs", -1), "train.epochs"),
    suite("entry-lr-zero", at("entries.0.train.lr", 0), "entries.0.train.lr"),
    suite("max-concurrent-zero", at("budget.max_concurrent", 0), "budget.max_concurrent"),
    suite("entry-max-frames-below-data", at("entries.0.knobs.max_frames", 2), "max_frames"),
    suite("weights-file-missing", at("weights", "/nonexistent/w.safetensors"), "/nonexistent/w.safetensors"),
    suite("unknown-backbone", at("backbone", "ViT-Nope-99"), "ViT-Nope-99"),
    suite("no-champion", lambda d, f: None, "champion", code=3),
    suite(
        "data-folder-missing", at("data", {"synthetic": "/nonexistent/shards"}), "/nonexistent/shards", champion=True
    ),
    suite("manifest-not-json", with_data(data_folder("[")), "manifest.json", champion=True),
    suite("manifest-without-split", with_data(data_folder(GOOD_MANIFEST)), "'test'", champion=True),
    BadInput(
        "suite-out-not-writable",
        lambda d: ["regress", str(SUITE), "--out", "/dev/null/report"],
        "--out",
        leftover=leftovers,
    ),
    BadInput("suite-out-a-file", lambda d: ["regress", str(SUITE), "--out", str(QUICKSTART)], "--out"),
]

TRAIN_OPTIONS = [
    train("epochs-negative", ["--epochs", "-1"], "--epochs"),
    train("epochs-a-word", ["--epochs", "many"], "--epochs"),
    train("workers-zero", ["--workers", "0"], "--workers"),
    train("batch-not-divisible", ["--batch-size", "33", "--workers", "2"], "--batch-size"),
    train("warmup-two", ["--warmup-ratio", "2"], "--warmup-ratio"),
    train("unknown-optimizer", ["--optimizer", "sgd"], "--optimizer"),
    train("grad-clip-unknown", ["--grad-clip", "sideways"], "--grad-clip"),
    train("frames-zero", ["--num-frames", "0"], "--num-frames"),
    train("max-failures-negative", ["--max-failures", "-1"], "--max-failures"),
    train("knob-width-zero", ["--set", "width=0"], "width"),
    train("knob-unknown", ["--set", "colour=1"], "colour"),
    train("knob-no-equals", ["--set", "width"], "--set"),
    train("knob-huge", ["--set", "width=" + "9" * 5000], "width"),
    train("backbone-unknown", ["--backbone", "ViT-Nope-99"], "ViT-Nope-99"),
    train("weights-missing", ["--weights", "/nonexistent/w.safetensors"], "/nonexistent/w.safetensors"),
    train("data-missing", ["--data", "/nonexistent/shards"], "/nonexistent/shards"),
    train("data-empty-folder", lambda f: ["--data", data_folder(None)(f)], "shards"),
    train("manifest-corrupt", lambda f: ["--data", data_folder("{")(f)], "manifest.json"),
    train("manifest-without-split", lambda f: ["--data", data_folder(GOOD_MANIFEST)(f)], "'test'"),
    train("eval-split-unknown", lambda f: ["--data", data_folder(GOOD_MANIFEST)(f), "--eval-split", "nope"], "'nope'"),
    train("train-split-unknown", lambda f: ["--data", data_folder(GOOD_MANIFEST)(f), "--train-split", "val"], "'val'"),
    BadInput(
        "train-mv-max-frames-below-data",
        lambda d: ["train", "--benchmark", "synthetic", "--method", "mv-adapter", "--set", "max_frames=2"],
        "max_frames",
    ),
    train("storage-not-writable", ["--storage", "/dev/null/ckpt"], "/dev/null/ckpt"),
    train("unknown-option", ["--colour", "red"], "--colour"),
    BadInput("train-unknown-method", lambda d: ["train", "--benchmark", "synthetic", "--method", "magic"], "--method"),
    BadInput(
        "train-unknown-benchmark", lambda d: ["train", "--benchmark", "atlantis", "--method", "lora"], "--benchmark"
    ),
    BadInput("train-no-method", lambda d: ["train", "--benchmark", "synthetic"], "--method"),
    BadInput(
        "train-rap-sparsity",
        lambda d: ["train", "--benchmark", "synthetic", "--method", "rap", "--set", "sparsity=1.5"],
        "sparsity",
    ),
]


def reproduce_with(edit: Callable) -> Callable[[Path], list[str]]:
    """`vtrlab reproduce` of MV-Adapter on the synthetic benchmark with the quickstart spec changed by `edit`."""
    return lambda d: [
        *("reproduce", "--paper", "mv-adapter", "--benchmark", "synthetic"),
        *("--spec", str(mutated(QUICKSTART, edit, "spec.yaml")(d))),
    ]


OTHER_COMMANDS = [
    BadInput(
        "reproduce-unknown-paper", lambda d: ["reproduce", "--paper", "clip4clip", "--benchmark", "msrvtt"], "--paper"
    ),
    BadInput(
        "reproduce-benchmark-not-in-spec",
        lambda d: ["reproduce", "--paper", "rap", "--benchmark", "synthetic"],
        "synthetic",
    ),
    BadInput(
        "reproduce-spec-missing",
        lambda d: ["reproduce", "--paper", "rap", "--benchmark", "msrvtt", "--spec", str(d / "nope.yaml")],
        "nope.yaml",
    ),
    BadInput("reproduce-bad-spec", reproduce_with(at("train.epochs", 0)), "train.epochs", leftover=leftovers),
    BadInput(
        "reproduce-no-data",
        reproduce_with(at("data", {"synthetic": "/nonexistent/shards"})),
        "/nonexistent/shards",
        leftover=leftovers,
    ),
    BadInput("reproduce-no-paper", lambda d: ["reproduce", "--benchmark", "msrvtt"], "--paper"),
    BadInput(
        "compare-unknown-experiment", lambda d: ["compare", "-e", "no-such-sweep", "--no-log"], "no-such-sweep", 3
    ),
]

YAML = [
    raw("syntax-error", "name: [quickstart\n"),
    raw("bomb", BOMB),
    raw("alias", "name: &n quickstart\ndescription: *n\n", "aliases"),
    raw("not-utf8", b"name: \xff\xfe\n"),
    raw("too-large", "description: " + "x" * (5 << 20) + "\n"),
    raw("python-tag", "name: !!python/object/apply:os.system [echo]\n"),
    raw("a-list", "- name\n- quickstart\n"),
    raw("a-scalar", "quickstart\n"),
    raw("empty", ""),
    raw("deep-nesting", "a: " + "[" * 5000 + "]" * 5000 + "\n"),
    raw("duplicate-key", QUICKSTART.read_text() + "name: again\n", "name"),
    raw("tab-indent", "name: q\nbudget:\n\ttrials: 2\n"),
    raw("bomb", BOMB, command="regress"),
    raw("syntax-error", "entries: {\n", command="regress"),
    raw("duplicate-key", SUITE.read_text() + "seeds: [3]\n", "seeds", command="regress"),
]

CASES = (
    SPEC_STRUCTURE
    + KNOBS
    + SEARCH_RANGES
    + TRAINING_FIELDS
    + BUDGET_OBJECTIVE
    + BACKBONE_DATA_STORAGE
    + SWEEP_OPTIONS
    + SUITES
    + TRAIN_OPTIONS
    + OTHER_COMMANDS
    + YAML
)


# ---- the test ------------------------------------------------------------------------------------


def mlflow_runs(path: Path) -> int:
    if not path.exists():
        return 0
    with sqlite3.connect(path) as db:
        tables = {row[0] for row in db.execute("select name from sqlite_master where type='table'")}
        return db.execute("select count(*) from runs").fetchone()[0] if "runs" in tables else 0


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private vtrlab home and MLflow store; Ray must not start (a case that starts it fails)."""
    import vtrlab.cluster

    folder = tmp_path / "home"
    (folder / "backbones").mkdir(parents=True)
    (folder / "backbones" / "vtr-tiny-synthetic-demo.safetensors").write_bytes(b"")  # the suite's weights
    monkeypatch.setenv("VTRLAB_HOME", str(folder))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{folder / 'mlflow.db'}")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)

    def no_ray(*args: Any, **kwargs: Any) -> str:
        pytest.fail("Ray was started: the input should have been refused before")

    monkeypatch.setattr(vtrlab.cluster, "connect", no_ray)
    return folder


def test_the_corpus_is_large_and_its_ids_unique():
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids)), sorted({i for i in ids if ids.count(i) > 1})
    assert len(CASES) >= 60


@pytest.mark.parametrize("case", CASES, ids=str)
def test_a_bad_input_is_one_line_and_leaves_nothing(case: BadInput, world: Path, tmp_path: Path, capsys):
    check(case, tmp_path, capsys)
    assert mlflow_runs(world / "mlflow.db") == 0, f"{case}: an MLflow run was created"
