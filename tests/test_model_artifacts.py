"""Adapter artifacts: exact round trips, refusal of other backbones, corrupt and truncated files, no pickle."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from model_helpers import TINY, _tiny_backbone, tiny_model, video_batch, video_embedding
from vtrlab.errors import ArtifactError
from vtrlab.model.artifacts import (
    CONFIG_NAME,
    WEIGHTS_NAME,
    EvaluationSettings,
    load_adapter,
    load_adapter_into,
    save_adapter,
)
from vtrlab.model.backbone import load_backbone
from vtrlab.model.factory import create_model
from vtrlab.train.step import make_optimizer, training_step

EVALUATION = EvaluationSettings(benchmark="synthetic", split="test", num_frames=6, max_words=32)
FAST_LR = {"method": 1e-2, "backbone_bias": 1e-3, "backbone": 1e-4}


def trained(method: str, **knobs):
    encoder = tiny_model(method, **knobs)
    optimizer = make_optimizer(encoder, lr=FAST_LR)
    for seed in range(2):
        training_step(encoder, optimizer, *video_batch(seed=seed))
    return encoder.eval()


def fresh_like(encoder):
    return tiny_model(encoder.method, **encoder.knobs)


@pytest.mark.parametrize(
    ("method", "knobs"),
    [("mv-adapter", {}), ("lora", {"rank": 4}), ("rap", {}), ("bottleneck", {"width": 8}), ("full", {})],
)
def test_round_trip_reproduces_embeddings_exactly(tmp_path: Path, method, knobs):
    encoder = trained(method, **knobs)
    save_adapter(encoder, tmp_path, EVALUATION)
    saved = load_file(str(tmp_path / WEIGHTS_NAME))
    assert set(saved) == {n for n, p in encoder.named_parameters() if p.requires_grad}
    restored = load_adapter_into(fresh_like(encoder), tmp_path)
    frames, mask, tokens = video_batch(seed=5)
    assert torch.equal(video_embedding(encoder, frames, mask, tokens), video_embedding(restored, frames, mask, tokens))
    with torch.no_grad():
        assert torch.equal(encoder.encode_text(tokens), restored.encode_text(tokens))


def test_artifact_holds_only_the_trainable_tensors(tmp_path: Path):
    encoder = trained("mv-adapter")
    save_adapter(encoder, tmp_path, EVALUATION, sweep="unit-test")
    config = json.loads((tmp_path / CONFIG_NAME).read_text())
    assert config["method"] == "mv-adapter" and config["knobs"] == encoder.knobs and config["sweep"] == "unit-test"
    assert config["backbone"]["fingerprint"] == encoder.backbone.fingerprint
    tensors = load_file(str(tmp_path / WEIGHTS_NAME))
    assert sum(t.numel() for t in tensors.values()) == sum(p.numel() for p in encoder.parameters() if p.requires_grad)
    assert not any(name.endswith("c_fc.weight") and "vtr_adapter" not in name for name in tensors)


def test_load_adapter_builds_the_recorded_method(tmp_path: Path):
    clip, _info = _tiny_backbone()
    weights = tmp_path / "backbone.safetensors"
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in clip.state_dict().items()}, str(weights))
    encoder = create_model("rap", TINY, weights, knobs={"rank": 2})
    save_adapter(encoder, tmp_path / "adapter", EVALUATION)
    restored = load_adapter(tmp_path / "adapter")
    assert restored.method == "rap" and restored.knobs["rank"] == 2


def test_wrong_backbone_is_refused(tmp_path: Path):
    save_adapter(trained("lora", rank=4), tmp_path, EVALUATION)
    torch.manual_seed(99)
    other_clip, other_info = load_backbone(TINY)
    other = create_model("lora", knobs={"rank": 4}, clip=other_clip, backbone_info=other_info)
    with pytest.raises(ArtifactError, match="fingerprint"):
        load_adapter_into(other, tmp_path)


def test_other_knobs_are_refused(tmp_path: Path):
    save_adapter(trained("lora", rank=4), tmp_path, EVALUATION)
    with pytest.raises(ArtifactError, match="artifact is lora"):
        load_adapter_into(tiny_model("lora", rank=2), tmp_path)


def test_corrupted_and_truncated_files_are_refused(tmp_path: Path):
    encoder = trained("bottleneck", width=8)
    save_adapter(encoder, tmp_path, EVALUATION)
    weights = tmp_path / WEIGHTS_NAME
    original = weights.read_bytes()
    corrupt = bytearray(original)
    corrupt[-10] ^= 0xFF
    weights.write_bytes(bytes(corrupt))
    with pytest.raises(ArtifactError, match="checksum"):
        load_adapter_into(fresh_like(encoder), tmp_path)
    weights.write_bytes(original[: len(original) // 2])
    with pytest.raises(ArtifactError, match="corrupted or truncated"):
        load_adapter_into(fresh_like(encoder), tmp_path)
    weights.write_bytes(original)
    (tmp_path / CONFIG_NAME).write_text("{not json")
    with pytest.raises(ArtifactError, match="not valid JSON"):
        load_adapter_into(fresh_like(encoder), tmp_path)
    with pytest.raises(ArtifactError, match="no adapter config"):
        load_adapter_into(fresh_like(encoder), tmp_path / "nowhere")


def test_loading_never_unpickles(tmp_path: Path, monkeypatch):
    encoder = trained("lora", rank=4)
    save_adapter(encoder, tmp_path, EVALUATION)

    def refuse(*args, **kwargs):
        raise AssertionError("an artifact load tried to unpickle")

    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    load_adapter_into(fresh_like(encoder), tmp_path)


def test_save_leaves_no_temporary_files(tmp_path: Path):
    save_adapter(trained("rap"), tmp_path, EVALUATION)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([CONFIG_NAME, WEIGHTS_NAME])
