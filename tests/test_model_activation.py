"""The MLP activation: a pretrained tag's config decides it (QuickGELU for every `openai` tag), a weights file
takes the explicit option, the artifact records it and refuses a backbone built with the other one."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import open_clip
import pytest
import torch
from open_clip.transformer import QuickGELU
from safetensors.torch import save_file
from torch import nn

from model_helpers import TINY
from vtrlab.errors import ArtifactError, ConfigError
from vtrlab.model.artifacts import CONFIG_NAME, EvaluationSettings, load_adapter, load_adapter_into, save_adapter
from vtrlab.model.backbone import CONFIG_DIR, load_backbone
from vtrlab.model.factory import create_model

EVALUATION = EvaluationSettings(benchmark="synthetic", split="test", num_frames=4, max_words=32)


def mlp_activations(clip: nn.Module) -> set[type]:
    blocks = [*clip.visual.transformer.resblocks, *clip.transformer.resblocks]
    return {type(block.mlp.gelu) for block in blocks}


@pytest.fixture()
def stub_openai_download(monkeypatch):
    """open_clip's download answers with a path and its checkpoint reader with a state dict of the right
    shapes, so an `openai` tag builds offline through open_clip's real create_model."""
    requested = []

    def download(cfg, *args, **kwargs):
        requested.append(cfg)
        return "/nowhere/openai-stub.safetensors"

    def state_dict(path, *args, **kwargs):
        assert path == "/nowhere/openai-stub.safetensors"
        return open_clip.create_model("ViT-B-32").state_dict()  # random weights, the right names and shapes

    monkeypatch.setattr(open_clip.factory, "download_pretrained", download)
    monkeypatch.setattr(open_clip.factory, "load_state_dict", state_dict)
    return requested


@pytest.mark.slow
def test_openai_tag_builds_quick_gelu_without_a_mismatch_warning(stub_openai_download):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # open_clip's "QuickGELU mismatch" warning would fail the test
        clip, info = load_backbone("ViT-B-32", "openai")
    assert stub_openai_download and stub_openai_download[0]["quick_gelu"] is True
    assert mlp_activations(clip) == {QuickGELU}
    assert info.activation == "quick_gelu" and info.to_dict()["activation"] == "quick_gelu"
    assert info.image_size == (224, 224)
    with pytest.raises(ConfigError, match=r"tag 'openai': quick_gelu=False contradicts the tag.*QuickGELU"):
        load_backbone("ViT-B-32", "openai", quick_gelu=False)


def test_plain_names_build_gelu_and_the_option_builds_quick_gelu(tmp_path: Path):
    clip, info = load_backbone(TINY)
    assert mlp_activations(clip) == {nn.GELU} and info.activation == "gelu"
    weights = tmp_path / "openai-like.safetensors"
    save_file({k: v.contiguous() for k, v in clip.state_dict().items()}, str(weights))
    quick, quick_info = load_backbone(TINY, weights, quick_gelu=True)
    assert mlp_activations(quick) == {QuickGELU} and quick_info.activation == "quick_gelu"
    assert quick_info.fingerprint == load_backbone(TINY, weights)[1].fingerprint  # same weights, other function
    frames = torch.randint(0, 255, (1, 3, 32, 32)).float()
    with torch.no_grad():
        assert not torch.allclose(clip.encode_image(frames), quick.encode_image(frames))


def test_quickgelu_model_configs_decide_when_no_option_is_given(tmp_path: Path):
    folder = tmp_path / "tiny-quickgelu"
    folder.mkdir()
    config = json.loads((CONFIG_DIR / "vtr-tiny.json").read_text())
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": {**config, "quick_gelu": True}}))
    clip, _ = load_backbone(TINY)
    save_file({k: v.contiguous() for k, v in clip.state_dict().items()}, str(folder / "open_clip_model.safetensors"))
    built, info = load_backbone(f"local-dir:{folder}")
    assert mlp_activations(built) == {QuickGELU} and info.activation == "quick_gelu"
    with pytest.raises(ConfigError, match="is a QuickGELU configuration; quick_gelu=False contradicts it"):
        load_backbone(f"local-dir:{folder}", quick_gelu=False)


def test_an_adapter_refuses_a_backbone_built_with_the_other_activation(tmp_path: Path):
    clip, _ = load_backbone(TINY)
    weights = tmp_path / "backbone.safetensors"
    save_file({k: v.contiguous() for k, v in clip.state_dict().items()}, str(weights))
    trained = create_model("bottleneck", TINY, weights, knobs={"width": 8}, quick_gelu=True)
    save_adapter(trained, tmp_path / "adapter", EVALUATION)
    assert json.loads((tmp_path / "adapter" / CONFIG_NAME).read_text())["backbone"]["activation"] == "quick_gelu"
    gelu = create_model("bottleneck", TINY, weights, knobs={"width": 8})
    with pytest.raises(ArtifactError, match=r"adapter_config\.json: key backbone\.activation is 'quick_gelu'.*'gelu'"):
        load_adapter_into(gelu, tmp_path / "adapter")
    restored = load_adapter(tmp_path / "adapter")  # builds the recorded activation itself
    assert mlp_activations(restored.clip) == {QuickGELU}


def test_a_gelu_adapter_refuses_a_backbone_built_with_quick_gelu(tmp_path: Path):
    clip, _ = load_backbone(TINY)
    weights = tmp_path / "backbone.safetensors"
    save_file({k: v.contiguous() for k, v in clip.state_dict().items()}, str(weights))
    save_adapter(create_model("bottleneck", TINY, weights, knobs={"width": 8}), tmp_path / "adapter", EVALUATION)
    assert json.loads((tmp_path / "adapter" / CONFIG_NAME).read_text())["backbone"]["activation"] == "gelu"
    quick = create_model("bottleneck", TINY, weights, knobs={"width": 8}, quick_gelu=True)
    assert quick.backbone.fingerprint == load_backbone(TINY, weights)[1].fingerprint  # only the activation differs
    with pytest.raises(ArtifactError, match=r"adapter_config\.json: key backbone\.activation is 'gelu'.*'quick_gelu'"):
        load_adapter_into(quick, tmp_path / "adapter")
    restored = load_adapter(tmp_path / "adapter")
    assert mlp_activations(restored.clip) == {nn.GELU}


def test_an_adapter_refuses_a_backbone_with_another_image_size(tmp_path: Path):
    encoder = create_model("bottleneck", TINY, knobs={"width": 8})
    save_adapter(encoder, tmp_path, EVALUATION)
    path = tmp_path / CONFIG_NAME
    config = json.loads(path.read_text())
    config["backbone"]["image_size"] = [224, 224]
    path.write_text(json.dumps(config))
    with pytest.raises(
        ArtifactError, match=r"adapter_config\.json: key backbone\.image_size is \[224, 224\].*\[32, 32\]"
    ):
        load_adapter_into(encoder, tmp_path)
