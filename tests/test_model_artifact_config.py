"""adapter_config.json as a typed record: what it holds, and the bad configs and tensor files it refuses with
one bounded line naming the file and the key (a few per class; a larger corpus lives elsewhere)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from model_helpers import tiny_model
from vtrlab import __version__
from vtrlab.errors import ArtifactError
from vtrlab.model import artifacts
from vtrlab.model.artifacts import (
    CONFIG_NAME,
    FORMAT_VERSION,
    WEIGHTS_NAME,
    EvaluationSettings,
    evaluation_settings,
    file_sha256,
    load_adapter,
    load_adapter_into,
    read_adapter_config,
    save_adapter,
)

EVALUATION = EvaluationSettings(benchmark="msrvtt", split="test", num_frames=12, max_words=32, batch_size=16)


@pytest.fixture()
def saved(tmp_path: Path) -> Path:
    directory = tmp_path / "adapter"
    save_adapter(tiny_model("bottleneck", width=8), directory, evaluation=EVALUATION, epoch=4)
    return directory


def rewrite(directory: Path, change) -> Path:
    path = directory / CONFIG_NAME
    config = json.loads(path.read_text())
    change(config)
    path.write_text(json.dumps(config))
    return path


def refused(directory: Path, pattern: str) -> str:
    with pytest.raises(ArtifactError) as caught:
        load_adapter_into(tiny_model("bottleneck", width=8), directory)
    message = str(caught.value)
    assert "\n" not in message and len(message) < 1000, message[:300]
    assert re.search(pattern, message), message
    return message


def test_config_records_what_evaluation_and_loading_need(saved: Path):
    config = read_adapter_config(saved)
    assert config.format_version == FORMAT_VERSION == 2 and config.vtrlab_version == __version__
    assert (config.backbone.activation, list(config.backbone.image_size)) == ("gelu", [32, 32])
    assert config.evaluation == EVALUATION and evaluation_settings(saved) == EVALUATION
    assert json.loads((saved / CONFIG_NAME).read_text())["epoch"] == 4  # extra keys are kept
    assert load_adapter_into(tiny_model("bottleneck", width=8), saved).evaluation == EVALUATION


def test_an_artifact_without_evaluation_settings_says_so(tmp_path: Path):
    save_adapter(tiny_model("bottleneck", width=8), tmp_path)
    with pytest.raises(ArtifactError, match=r"adapter_config\.json: key evaluation is missing"):
        evaluation_settings(tmp_path)
    refused(tmp_path, r"adapter_config\.json: key evaluation is missing")  # loading reads it the same way


@pytest.mark.parametrize(
    ("content", "pattern"),
    [
        ('"a string"', r"adapter_config\.json: expected a JSON object .* got a str"),
        ("[1, 2]", r"expected a JSON object .* got a list"),
        ("42", r"expected a JSON object .* got a int"),
        ("{not json", r"adapter_config\.json: not valid JSON"),
    ],
)
def test_a_config_that_is_not_a_json_object_is_refused(saved: Path, content, pattern):
    (saved / CONFIG_NAME).write_text(content)
    refused(saved, pattern)


@pytest.mark.parametrize(
    ("change", "pattern"),
    [
        (lambda c: c.update(knobs="width=8"), r"adapter_config\.json: key knobs: Input should be a valid dictionary"),
        (lambda c: c["backbone"].update(image_size=["a", 2]), r"key backbone\.image_size\.0: Input should be a valid"),
        (
            lambda c: c["backbone"].update(activation="relu"),
            r"key backbone\.activation: Input should be 'quick_gelu' or",
        ),
        (lambda c: c["backbone"].pop("activation"), r"key backbone\.activation is missing"),
        (lambda c: c.pop("weights_sha256"), r"key weights_sha256 is missing"),
        (
            lambda c: c["evaluation"].update(num_frames=-1),
            r"key evaluation\.num_frames: Input should be greater than 0",
        ),
        (lambda c: c.update(format_version="2"), r"key format_version: Input should be 2"),
        (lambda c: c.update(method=None), r"key method: Input should be a valid string"),
    ],
)
def test_wrong_or_missing_fields_name_the_key(saved: Path, change, pattern):
    rewrite(saved, change)
    refused(saved, pattern)


def test_format_versions_other_than_this_one_are_named(saved: Path):
    rewrite(saved, lambda c: c.update(format_version=99))
    refused(saved, rf"format_version 99 is newer than this vtrlab {__version__} reads \(up to 2\)")
    rewrite(saved, lambda c: c.update(format_version=1))
    refused(saved, r"format_version 1 is an older artifact format without backbone\.activation")


@pytest.mark.parametrize("value", ["../outside.safetensors", "/etc/passwd", "sub/../../x", "C:\\\\x.safetensors"])
def test_weights_file_outside_the_folder_is_refused_unread(saved: Path, monkeypatch, value):
    (saved.parent / "outside.safetensors").write_bytes((saved / WEIGHTS_NAME).read_bytes())
    rewrite(saved, lambda c: c.update(weights_file=value))
    hashed = []
    monkeypatch.setattr(artifacts, "file_sha256", lambda path: hashed.append(path) or "sha256:" + "0" * 64)
    refused(saved, r"key weights_file: Value error, must name a file inside the artifact folder")
    assert hashed == []


def test_weights_file_linking_out_of_the_folder_is_refused_unread(saved: Path, monkeypatch):
    outside = saved.parent / "elsewhere.safetensors"
    outside.write_bytes((saved / WEIGHTS_NAME).read_bytes())
    os.symlink(outside, saved / "link.safetensors")
    rewrite(saved, lambda c: c.update(weights_file="link.safetensors"))
    hashed = []
    monkeypatch.setattr(artifacts, "file_sha256", lambda path: hashed.append(path) or "sha256:" + "0" * 64)
    refused(saved, r"weights_file 'link\.safetensors' resolves outside the artifact folder")
    assert hashed == []


def test_non_finite_tensors_are_refused(saved: Path):
    tensors = load_file(str(saved / WEIGHTS_NAME))
    name = sorted(tensors)[0]
    tensors[name] = torch.full_like(tensors[name], float("nan"))
    save_file(tensors, str(saved / WEIGHTS_NAME))
    rewrite(saved, lambda c: c.update(weights_sha256=file_sha256(saved / WEIGHTS_NAME)))
    refused(saved, rf"tensor '{name}' holds {tensors[name].numel()} non-finite value\(s\)")


def test_messages_stay_bounded_for_huge_values(saved: Path):
    rewrite(saved, lambda c: c["backbone"].update(activation="x" * 500_000))
    message = refused(saved, r"key backbone\.activation: .*\(500002 characters\)")
    assert len(message) < 1000


def test_an_unknown_method_in_the_config_names_the_file(saved: Path):
    rewrite(saved, lambda c: c.update(method="adapterx"))
    with pytest.raises(ArtifactError, match=r"adapter_config\.json: cannot build what it records: unknown method"):
        load_adapter(saved)


def test_a_huge_recorded_backbone_name_gives_a_bounded_message(saved: Path):
    rewrite(saved, lambda c: c["backbone"].update(name="ViT-" + "x" * 1_000_000))
    with pytest.raises(ArtifactError, match=r"cannot build what it records: unknown backbone") as caught:
        load_adapter(saved)
    assert len(str(caught.value)) < 1500 and "\n" not in str(caught.value)
