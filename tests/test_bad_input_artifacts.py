"""The malformed-input corpus for adapter artifacts and registry references (issue #13): each case is a
`vtrlab pull` or `vtrlab search` line that must exit 2 (bad input) or 3 (not found) with one line naming the
culprit, before any download where the reference is at fault, and leave no partial `--out` behind.

Malformed artifacts are made from one valid adapter of the tiny backbone (its weights saved as a file, so
the backbone can be rebuilt): a case copies it, breaks one thing (`Broken`), registers the copy in a SQLite
MLflow store of this module, and pulls it; the same breakages are loaded straight with `load_adapter`. Adding
an input kind is one line in a list below.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from badinput import BadInput, check
from vtrlab.errors import ArtifactError
from vtrlab.model.artifacts import (
    CONFIG_NAME,
    WEIGHTS_NAME,
    EvaluationSettings,
    file_sha256,
    load_adapter,
    save_adapter,
)

GOOD = "vtrlab-bad-input-good"  # a registered valid adapter (version 1, alias champion)
EVALUATION = EvaluationSettings(benchmark="synthetic", split="test", num_frames=4, max_words=16, batch_size=8)
OTHER_SHA = "sha256:" + "0" * 64


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> dict:
    """One valid adapter (bottleneck on the tiny backbone, weights in a file) and a SQLite MLflow store where
    it is registered as GOOD version 1 (champion)."""
    from mlflow.tracking import MlflowClient

    from vtrlab.model.backbone import load_backbone
    from vtrlab.model.factory import create_model

    root = tmp_path_factory.mktemp("bad-artifacts")
    torch.manual_seed(7)
    clip, _ = load_backbone("vtr-tiny")
    weights = root / "vtr-tiny.safetensors"
    save_file({k: v.contiguous() for k, v in clip.state_dict().items()}, str(weights))
    clip, info = load_backbone("vtr-tiny", weights)
    encoder = create_model("bottleneck", knobs={"width": 8}, clip=clip, backbone_info=info)
    save_adapter(encoder, root / "adapter", evaluation=EVALUATION)
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("bad-input", artifact_location=(root / "artifacts").as_uri())
    data = {"root": root, "adapter": root / "adapter", "uri": uri, "client": client, "experiment": experiment}
    register(data, GOOD, root / "adapter")
    client.set_registered_model_alias(GOOD, "champion", "1")
    return data


def register(store: dict, model: str, adapter: Path, path: str = "adapter") -> str:
    """Log `adapter` (a folder, or a file) as a run's `adapter/` artifact and register `runs:/<run>/<path>` as
    a version of `model` (no checks: the registry is made to hold what a broken or hostile writer could put
    there); returns the run's artifact folder."""
    client = store["client"]
    run = client.create_run(store["experiment"])
    if adapter.is_dir():
        client.log_artifacts(run.info.run_id, str(adapter), artifact_path="adapter")
    else:
        client.log_artifact(run.info.run_id, str(adapter), artifact_path="adapter")
    client.set_terminated(run.info.run_id)
    if model not in {m.name for m in client.search_registered_models()}:
        client.create_registered_model(model)
    client.create_model_version(model, source=f"runs:/{run.info.run_id}/{path}", run_id=run.info.run_id)
    return run.info.artifact_uri.removeprefix("file://")


@pytest.fixture(autouse=True)
def environment(store, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store["uri"])
    monkeypatch.setenv("VTRLAB_HOME", str(tmp_path / "home"))


# ---- breaking a copy of the valid adapter ----------------------------------------------------------------


def edit_config(change: Callable[[dict], object]) -> Callable[[Path], None]:
    """Change the parsed config in place (`change` may also return a replacement document)."""

    def apply(adapter: Path) -> None:
        path = adapter / CONFIG_NAME
        config = json.loads(path.read_text())
        replaced = change(config)
        path.write_text(json.dumps(config if replaced is None else replaced))

    return apply


def set_key(dotted: str, value: object) -> Callable[[Path], None]:
    def change(config: dict) -> None:
        *parents, last = dotted.split(".")
        node = config
        for part in parents:
            node = node[part]
        node[last] = value

    return edit_config(change)


def drop_key(dotted: str) -> Callable[[Path], None]:
    def change(config: dict) -> None:
        *parents, last = dotted.split(".")
        node = config
        for part in parents:
            node = node[part]
        del node[last]

    return edit_config(change)


def config_text(text: str | bytes) -> Callable[[Path], None]:
    def apply(adapter: Path) -> None:
        path = adapter / CONFIG_NAME
        path.write_bytes(text.encode() if isinstance(text, str) else text)

    return apply


def resealed(apply: Callable[[Path], None]) -> Callable[[Path], None]:
    """`apply`, then the config's checksum updated to the changed tensor file (so the content check speaks)."""

    def both(adapter: Path) -> None:
        apply(adapter)
        set_key("weights_sha256", file_sha256(adapter / WEIGHTS_NAME))(adapter)

    return both


def weights_bytes(change: Callable[[bytes], bytes]) -> Callable[[Path], None]:
    def apply(adapter: Path) -> None:
        path = adapter / WEIGHTS_NAME
        path.write_bytes(change(path.read_bytes()))

    return apply


def tensors(change: Callable[[dict[str, torch.Tensor]], None]) -> Callable[[Path], None]:
    def apply(adapter: Path) -> None:
        path = adapter / WEIGHTS_NAME
        loaded = load_file(str(path))
        change(loaded)
        save_file(loaded, str(path))

    return resealed(apply)


def first_name(adapter: Path) -> str:
    return sorted(load_file(str(adapter / WEIGHTS_NAME)))[0]


def _fill(value: float, which: str = "all") -> Callable[[dict[str, torch.Tensor]], None]:
    def change(loaded: dict[str, torch.Tensor]) -> None:
        names = sorted(loaded) if which == "all" else [sorted(loaded)[0]]
        for name in names:
            if which == "one-value":
                loaded[name].view(-1)[0] = value
            else:
                loaded[name] = torch.full_like(loaded[name], value)

    return change


def _reshape(loaded: dict[str, torch.Tensor]) -> None:
    name = sorted(loaded)[0]
    loaded[name] = torch.zeros(loaded[name].numel() + 1)


def _drop_tensor(loaded: dict[str, torch.Tensor]) -> None:
    del loaded[sorted(loaded)[0]]


def _extra_tensor(loaded: dict[str, torch.Tensor]) -> None:
    loaded["stowaway.weight"] = torch.zeros(2)


def _integer_tensor(loaded: dict[str, torch.Tensor]) -> None:
    name = sorted(loaded)[0]
    loaded[name] = torch.zeros(loaded[name].shape, dtype=torch.int64)


def remove(name: str) -> Callable[[Path], None]:
    return lambda adapter: (adapter / name).unlink()


def weights_link_outside(adapter: Path) -> None:
    outside = adapter.parent / "outside.safetensors"
    shutil.move(adapter / WEIGHTS_NAME, outside)
    (adapter / WEIGHTS_NAME).symlink_to(outside)


def config_link_outside(adapter: Path) -> None:
    outside = adapter.parent / "outside.json"
    shutil.move(adapter / CONFIG_NAME, outside)
    (adapter / CONFIG_NAME).symlink_to(outside)


@dataclass(frozen=True)
class Broken:
    """A valid adapter with one thing broken: `culprit` must appear in the error line (a text, or made from
    the adapter folder); `pulled`: also registered and pulled (symlinks do not survive an upload)."""

    id: str
    breaks: Callable[[Path], None]
    culprit: str | Callable[[Path], str]
    pulled: bool = True

    def __str__(self) -> str:
        return self.id


# ---- the breakages: configs, format versions, tensor files, paths ---------------------------------------
CONFIGS = [
    Broken("config-json-string", config_text('"a string"'), "got a str"),
    Broken("config-json-list", config_text("[1, 2]"), "got a list"),
    Broken("config-json-number", config_text("42"), "got a int"),
    Broken("config-json-null", config_text("null"), "got a NoneType"),
    Broken("config-not-json", config_text("{not json"), "not valid JSON"),
    Broken("config-empty-file", config_text(""), "not valid JSON"),
    Broken("config-not-utf8", config_text(b"\xff\xfe\x00{"), "not valid JSON"),
    Broken("config-deeply-nested", config_text("[" * 100_000 + "]" * 100_000), CONFIG_NAME),
    Broken("config-too-large", config_text("{" + " " * (2 << 20) + "}"), "bytes"),
    Broken("config-missing", remove(CONFIG_NAME), CONFIG_NAME),
    Broken("method-not-a-string", set_key("method", 42), "key method"),
    Broken("method-unknown", set_key("method", "no-such-method"), "no-such-method"),
    Broken("method-huge", set_key("method", "m" * 100_000), "characters"),
    Broken("knobs-not-a-mapping", set_key("knobs", "width=8"), "key knobs"),
    Broken("knobs-unknown-knob", set_key("knobs", {"width": 8, "bogus": 1}), "bogus"),
    Broken("knobs-bad-value", set_key("knobs", {"width": -3}), "width"),
    Broken("backbone-missing", drop_key("backbone"), "key backbone is missing"),
    Broken("backbone-not-a-mapping", set_key("backbone", "vtr-tiny"), "key backbone"),
    Broken("backbone-name-unknown", set_key("backbone.name", "no-such-net"), "no-such-net"),
    Broken("backbone-weights-not-a-string", set_key("backbone.weights", 12), "key backbone.weights"),
    Broken("backbone-weights-missing-file", set_key("backbone.weights", "/nowhere/w.safetensors"), "/nowhere/w"),
    Broken("backbone-fingerprint-malformed", set_key("backbone.fingerprint", "abc"), "key backbone.fingerprint"),
    Broken("backbone-fingerprint-other", set_key("backbone.fingerprint", OTHER_SHA), "fingerprint"),
    Broken("backbone-activation-unknown", set_key("backbone.activation", "relu"), "key backbone.activation"),
    Broken("backbone-image-size-zero", set_key("backbone.image_size", [0, 32]), "key backbone.image_size"),
    Broken("backbone-image-size-string", set_key("backbone.image_size", "32"), "key backbone.image_size"),
    Broken("backbone-unknown-key", set_key("backbone.k" + "e" * 5000, 1), "key backbone.ke"),
    Broken("sha256-malformed", set_key("weights_sha256", "md5:abc"), "key weights_sha256"),
    Broken("sha256-missing", drop_key("weights_sha256"), "key weights_sha256 is missing"),
    Broken("evaluation-frames-zero", set_key("evaluation.num_frames", 0), "key evaluation.num_frames"),
    Broken("evaluation-frames-string", set_key("evaluation.num_frames", "4"), "key evaluation.num_frames"),
    Broken("evaluation-missing", drop_key("evaluation"), "key evaluation is missing"),
    Broken("everything-wrong", config_text(json.dumps({f"k{i}": "x" * 300 for i in range(50)})), "key"),
]
VERSIONS = [
    Broken("format-version-future", set_key("format_version", 3), "format_version 3"),
    Broken("format-version-huge", set_key("format_version", 10**30), "format_version 1000000"),
    Broken("format-version-old", set_key("format_version", 1), "format_version 1"),
    Broken("format-version-string", set_key("format_version", "2"), "key format_version"),
    Broken("format-version-float", set_key("format_version", 2.5), "key format_version"),
    Broken("format-version-missing", drop_key("format_version"), "key format_version is missing"),
]
WEIGHTS = [
    Broken("weights-missing", remove(WEIGHTS_NAME), WEIGHTS_NAME),
    Broken("weights-checksum-mismatch", set_key("weights_sha256", OTHER_SHA), "weights_sha256"),
    Broken("weights-flipped-byte", weights_bytes(lambda b: b[:-10] + bytes([b[-10] ^ 0xFF]) + b[-9:]), "checksum"),
    Broken("weights-truncated", resealed(weights_bytes(lambda b: b[: len(b) // 2])), WEIGHTS_NAME),
    Broken("weights-empty", resealed(weights_bytes(lambda b: b"")), WEIGHTS_NAME),
    Broken("weights-not-safetensors", resealed(weights_bytes(lambda b: b"PK\x03\x04 not tensors" * 10)), WEIGHTS_NAME),
    Broken(
        "weights-header-overlong",
        resealed(weights_bytes(lambda b: (2**62).to_bytes(8, "little") + b[8:])),
        WEIGHTS_NAME,
    ),
    Broken("weights-all-nan", tensors(_fill(float("nan"))), first_name),
    Broken("weights-one-inf", tensors(_fill(float("inf"), "one-value")), first_name),
    Broken("weights-wrong-shape", tensors(_reshape), first_name),
    Broken("weights-tensor-missing", tensors(_drop_tensor), first_name),
    Broken("weights-tensor-extra", tensors(_extra_tensor), "stowaway.weight"),
    Broken("weights-integer-tensor", tensors(_integer_tensor), first_name),
]
PATHS = [
    Broken("weights-file-dotdot", set_key("weights_file", "../../../../../etc/passwd"), "../../../../../etc/passwd"),
    Broken("weights-file-absolute", set_key("weights_file", "/etc/passwd"), "/etc/passwd"),
    Broken("weights-file-windows-drive", set_key("weights_file", "C:\\Windows\\win.ini"), "win.ini"),
    Broken("weights-file-inner-dotdot", set_key("weights_file", f"sub/../{WEIGHTS_NAME}"), "sub/.."),
    Broken("weights-file-empty", set_key("weights_file", ""), "key weights_file"),
    Broken("weights-file-folder", set_key("weights_file", "."), "weights_file"),
    Broken("weights-file-nul", set_key("weights_file", "a\x00b"), "weights_file"),
    Broken("weights-file-overlong", set_key("weights_file", "w" * 5000), "weights_file"),
    Broken("weights-file-not-a-string", set_key("weights_file", ["a"]), "key weights_file"),
    Broken("weights-symlink-outside", weights_link_outside, "outside the artifact folder", pulled=False),
    Broken("config-symlink-outside", config_link_outside, "outside the artifact folder", pulled=False),
]
BROKEN = CONFIGS + VERSIONS + WEIGHTS + PATHS


def broken_copy(store: dict, folder: Path, broken: Broken) -> Path:
    adapter = folder / "adapter"
    shutil.copytree(store["adapter"], adapter)
    broken.breaks(adapter)
    return adapter


def culprit_of(broken: Broken, adapter: Path) -> str:
    return broken.culprit(adapter) if callable(broken.culprit) else broken.culprit


@pytest.mark.parametrize("broken", BROKEN, ids=str)
def test_load_adapter_refuses(broken: Broken, store, tmp_path):
    """`load_adapter` on a broken artifact: one bounded ArtifactError line naming the culprit."""
    adapter = broken_copy(store, tmp_path, broken)
    culprit = culprit_of(broken, store["adapter"])
    with pytest.raises(ArtifactError) as caught:
        load_adapter(adapter)
    message = str(caught.value)
    assert "\n" not in message and len(message) <= 1000, message[:2000]
    assert culprit in message, message


def pull_broken(store: dict, broken: Broken) -> BadInput:
    """`vtrlab pull` of the broken artifact, registered as its own model."""
    model = f"vtrlab-bad-{broken.id}"

    def argv(folder: Path) -> list[str]:
        register(store, model, broken_copy(store, folder, broken))
        return ["pull", f"{model}/1", "--out", str(folder / "out")]

    return BadInput(
        f"pull-{broken.id}",
        argv,
        culprit=lambda folder: culprit_of(broken, store["adapter"]),
        leftover=lambda folder: [folder / "out"],
    )


@pytest.mark.parametrize("broken", [b for b in BROKEN if b.pulled], ids=str)
def test_pull_refuses_broken_artifacts(broken: Broken, store, tmp_path, capsys):
    check(pull_broken(store, broken), tmp_path, capsys)


SEARCHED = [
    "config-json-string",
    "format-version-future",
    "weights-all-nan",
    "weights-file-dotdot",
    "evaluation-missing",
]


@pytest.mark.parametrize("broken", [b for b in BROKEN if b.id in SEARCHED], ids=str)
def test_search_refuses_broken_artifacts(broken: Broken, store, tmp_path, capsys):
    """`vtrlab search --model` pulls into its cache the same way: refused before any shard is read."""
    pulled = pull_broken(store, broken)

    def argv(folder: Path) -> list[str]:
        model = pulled.argv(folder)[1]
        return ["search", "--model", model, "--shards", str(folder / "no-shards"), "--query", "a red square"]

    check(BadInput(f"search-{broken.id}", argv, pulled.culprit), tmp_path, capsys)
    assert not list((tmp_path / "home").rglob("*.pull-*")), "a partial pull left in the cache"


# ---- registered versions whose artifact is not an adapter folder ----------------------------------------
def deleted_artifact(store: dict, folder: Path, model: str) -> None:
    shutil.rmtree(register(store, model, broken_copy(store, folder, Broken("intact", print, ""))))


def single_file(store: dict, folder: Path, model: str) -> None:
    adapter = broken_copy(store, folder, Broken("intact", print, ""))
    register(store, model, adapter / CONFIG_NAME, path=f"adapter/{CONFIG_NAME}")


def mlmodel(text: str) -> Callable[[dict, Path, str], None]:
    """A logged model around the valid adapter whose MLmodel file is `text`."""

    def write(store: dict, folder: Path, model: str) -> None:
        logged = folder / "model"
        shutil.copytree(store["adapter"], logged / "adapter")
        (logged / "MLmodel").write_text(text)
        register(store, model, logged)

    return write


OUTSIDE = "flavors:\n  python_function:\n    artifacts:\n      adapter:\n        path: ../../../../etc\n"
REGISTERED = [  # (id, how the version is made, culprit)
    ("version-artifact-deleted", deleted_artifact, "cannot download"),
    ("version-source-is-a-file", single_file, "is a file, not an adapter directory"),
    ("mlmodel-adapter-outside", mlmodel(OUTSIDE), "../../../../etc"),
    ("mlmodel-not-yaml", mlmodel("{["), "MLmodel"),
    ("mlmodel-no-adapter", mlmodel("flavors: {}"), "adapter"),
]


@pytest.mark.parametrize(("id", "make", "culprit"), REGISTERED, ids=[r[0] for r in REGISTERED])
def test_pull_refuses_registered_non_adapters(id, make, culprit, store, tmp_path, capsys):
    def argv(folder: Path) -> list[str]:
        make(store, folder, f"vtrlab-bad-{id}")
        return ["pull", f"vtrlab-bad-{id}/1", "--out", str(folder / "out")]

    check(BadInput(id, argv, culprit, leftover=no_out), tmp_path, capsys)


# ---- references: malformed (exit 2) or naming nothing registered (exit 3), before any download ----------
def out(folder: Path) -> list[str]:
    return ["--out", str(folder / "out")]


def no_out(folder: Path) -> list[Path]:
    return [folder / "out"]


LONG = "m" * 5000
REFERENCES = [
    BadInput("ref-version-letters", lambda d: ["pull", f"{GOOD}/abc", *out(d)], f"{GOOD}/abc", leftover=no_out),
    BadInput("ref-version-negative", lambda d: ["pull", f"{GOOD}/-1", *out(d)], f"{GOOD}/-1", leftover=no_out),
    BadInput("ref-version-zero", lambda d: ["pull", f"{GOOD}/0", *out(d)], f"{GOOD}/0", leftover=no_out),
    BadInput("ref-version-float", lambda d: ["pull", f"{GOOD}/1.0", *out(d)], f"{GOOD}/1.0", leftover=no_out),
    BadInput("ref-version-empty", lambda d: ["pull", f"{GOOD}/", *out(d)], f"{GOOD}/", leftover=no_out),
    BadInput("ref-two-versions", lambda d: ["pull", f"{GOOD}/1/2", *out(d)], f"{GOOD}/1/2", leftover=no_out),
    BadInput("ref-alias-empty", lambda d: ["pull", f"{GOOD}@", *out(d)], f"{GOOD}@", leftover=no_out),
    BadInput(
        "ref-alias-and-version", lambda d: ["pull", f"{GOOD}@champion/1", *out(d)], "@champion/1", leftover=no_out
    ),
    BadInput("ref-empty", lambda d: ["pull", "", *out(d)], "model reference ''", leftover=no_out),
    BadInput("ref-blank", lambda d: ["pull", "   ", *out(d)], "model reference", leftover=no_out),
    BadInput("ref-model-empty", lambda d: ["pull", "@champion", *out(d)], "@champion", leftover=no_out),
    BadInput("ref-newline", lambda d: ["pull", f"{GOOD}\n/1", *out(d)], "model reference", leftover=no_out),
    BadInput("ref-quote", lambda d: ["pull", "it's", *out(d)], '"it\'s"', leftover=no_out),
    BadInput("ref-overlong", lambda d: ["pull", LONG + "@", *out(d)], "characters", leftover=no_out),
    BadInput("ref-models-prefix-only", lambda d: ["pull", "models:/", *out(d)], "models:/", leftover=no_out),
    BadInput("ref-prefixed-letters", lambda d: ["pull", f"models:/{GOOD}/x", *out(d)], f"{GOOD}/x", leftover=no_out),
    BadInput("ref-space-in-name", lambda d: ["pull", "my model@champion", *out(d)], "my model", leftover=no_out),
    BadInput("ref-alias-dotted", lambda d: ["pull", f"{GOOD}@a.b", *out(d)], f"{GOOD}@a.b", leftover=no_out),
    BadInput(
        "ref-version-overflow",
        lambda d: ["pull", f"{GOOD}/99999999999999999999999", *out(d)],
        "99999999999999999999999",
        code=3,
        leftover=no_out,
    ),
    BadInput("ref-version-unknown", lambda d: ["pull", f"{GOOD}/7", *out(d)], "no version 7", 3, no_out),
    BadInput("ref-alias-unknown", lambda d: ["pull", f"{GOOD}@nope", *out(d)], "no alias 'nope'", 3, no_out),
    BadInput("ref-model-unknown", lambda d: ["pull", "no-such-model", *out(d)], "'no-such-model'", 3, no_out),
    BadInput("ref-model-unknown-version", lambda d: ["pull", "no-such-model/1", *out(d)], "'no-such-model'", 3, no_out),
    BadInput("ref-model-overlong-unknown", lambda d: ["pull", LONG, *out(d)], "characters", 3, no_out),
    BadInput(
        "search-ref-malformed",
        lambda d: ["search", "--model", f"{GOOD}/abc", "--shards", str(d), "--query", "a red square"],
        f"{GOOD}/abc",
    ),
    BadInput(
        "search-ref-unknown-alias",
        lambda d: ["search", "--model", f"{GOOD}@nope", "--shards", str(d), "--query", "a red square"],
        "no alias 'nope'",
        code=3,
    ),
    BadInput(
        "search-ref-overflow",
        lambda d: ["search", "--model", f"{GOOD}/99999999999999999999999", "--shards", str(d), "--query", "x"],
        "99999999999999999999999",
        code=3,
    ),
]


@pytest.mark.parametrize("case", REFERENCES, ids=str)
def test_references(case: BadInput, tmp_path, capsys, monkeypatch):
    import vtrlab.hub.pull  # noqa: F401  (the module, for sys.modules)

    def no_download(*args, **kwargs):
        raise AssertionError("a refused reference reached the download")

    monkeypatch.setattr(sys.modules["vtrlab.hub.pull"], "_download", no_download)
    check(case, tmp_path, capsys)


# ---- pull and search options ------------------------------------------------------------------------
def a_file(folder: Path) -> Path:
    path = folder / "taken.txt"
    path.write_text("not a folder")
    return path


def a_full_folder(folder: Path) -> Path:
    path = folder / "full"
    path.mkdir()
    (path / "notes.txt").write_text("someone's work")
    return path


def other_backbone(folder: Path) -> Path:
    from vtrlab.model.backbone import load_backbone

    torch.manual_seed(99)
    clip, _ = load_backbone("vtr-tiny")
    path = folder / "other.safetensors"
    save_file({k: v.contiguous() for k, v in clip.state_dict().items()}, str(path))
    return path


def text_file(folder: Path) -> Path:
    path = folder / "weights.safetensors"
    path.write_text("these are not weights\nat all\n")
    return path


OPTIONS = [
    BadInput("out-is-a-file", lambda d: ["pull", GOOD, "--out", str(a_file(d))], "taken.txt"),
    BadInput("out-not-empty", lambda d: ["pull", GOOD, "--out", str(a_full_folder(d))], "full"),
    BadInput("out-under-a-file", lambda d: ["pull", GOOD, "--out", str(a_file(d) / "sub")], "taken.txt"),
    BadInput("out-empty", lambda d: ["pull", GOOD, "--out", ""], "--out"),
    BadInput(
        "weights-file-missing",
        lambda d: ["pull", GOOD, *out(d), "--weights", str(d / "none.safetensors")],
        "none.safetensors",
        leftover=no_out,
    ),
    BadInput(
        "weights-other-backbone",
        lambda d: ["pull", GOOD, *out(d), "--weights", str(other_backbone(d))],
        "fingerprint",
        leftover=no_out,
    ),
    BadInput(
        "weights-not-weights",
        lambda d: ["pull", GOOD, *out(d), "--weights", str(text_file(d))],
        "weights.safetensors",
        leftover=no_out,
    ),
    BadInput(
        "weights-unknown-tag",
        lambda d: ["pull", GOOD, *out(d), "--weights", "no-such-tag"],
        "no-such-tag",
        leftover=no_out,
    ),
    BadInput(
        "search-weights-missing",
        lambda d: ["search", "--model", GOOD, "--shards", str(d), "--query", "x", "--weights", str(d / "none.pt")],
        "none.pt",
    ),
]


@pytest.mark.parametrize("case", OPTIONS, ids=str)
def test_options(case: BadInput, tmp_path, capsys):
    check(case, tmp_path, capsys)


def test_out_under_a_file_is_left_alone(tmp_path, capsys):
    """A refused --out writes nothing: the file it sits under is unchanged, and no lock is created beside."""
    check(OPTIONS[2], tmp_path, capsys)
    assert (tmp_path / "case" / "taken.txt").read_text() == "not a folder"
    assert sorted(p.name for p in (tmp_path / "case").iterdir()) == ["taken.txt"]


def test_the_valid_adapter_pulls_and_loads(store, tmp_path, capsys):
    """The corpus's starting point is sound: the valid adapter pulls (exit 0) and loads."""
    from badinput import run_cli

    code, _out, err = run_cli(["pull", GOOD, "--out", str(tmp_path / "good")], capsys)
    assert code == 0, err
    assert load_adapter(tmp_path / "good").method == "bottleneck"
    assert not [name for name in os.listdir(tmp_path) if ".pull-" in name]
