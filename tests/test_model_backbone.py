"""Backbone loading (names, weights files, local-dir folders), fingerprints, and the encoder's input checks."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from model_helpers import tiny_model, video_batch
from vtrlab.errors import ConfigError, InputError
from vtrlab.model.backbone import CONFIG_DIR, available_backbones, load_backbone, weights_fingerprint
from vtrlab.model.factory import create_model
from vtrlab.model.tokenizer import tokenize


def test_tiny_configs_are_registered_next_to_open_clip_vits():
    names = available_backbones()
    assert {"vtr-tiny", "vtr-small", "ViT-B-16", "ViT-B-32", "ViT-L-14"} <= set(names)


def test_fingerprint_is_stable_and_sensitive_to_one_weight():
    clip, info = load_backbone("vtr-tiny")
    assert weights_fingerprint(clip) == info.fingerprint
    with torch.no_grad():
        clip.visual.proj[0, 0] += 1e-3
    assert weights_fingerprint(clip) != info.fingerprint


@pytest.fixture()
def saved_weights(tmp_path: Path) -> tuple[Path, str]:
    torch.manual_seed(7)
    clip, info = load_backbone("vtr-tiny")
    path = tmp_path / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in clip.state_dict().items()}, str(path))
    return path, info.fingerprint


def test_weights_file_loads_the_same_backbone(saved_weights):
    path, fingerprint = saved_weights
    _, info = load_backbone("vtr-tiny", path)
    assert info.fingerprint == fingerprint
    assert info.weights == str(path)


def test_local_dir_folder_loads_config_and_weights(saved_weights, tmp_path: Path):
    path, fingerprint = saved_weights
    folder = tmp_path / "tiny-dir"
    folder.mkdir()
    config = json.loads((CONFIG_DIR / "vtr-tiny.json").read_text())
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": config}))
    shutil.copy(path, folder / "open_clip_model.safetensors")
    _, info = load_backbone(f"local-dir:{folder}")
    assert info.fingerprint == fingerprint


def test_bad_backbones_name_what_is_wrong(tmp_path: Path):
    with pytest.raises(ConfigError, match=r"unknown backbone 'ViT-Q-99'.*ViT-B-16"):
        create_model("zero-shot", "ViT-Q-99")
    with pytest.raises(ConfigError, match="does not exist"):
        load_backbone("vtr-tiny", tmp_path / "missing.safetensors")
    with pytest.raises(ConfigError, match=r"open_clip_config\.json"):
        load_backbone(f"local-dir:{tmp_path}")
    other = tmp_path / "small.safetensors"
    clip, _ = load_backbone("vtr-small")
    save_file({k: v.contiguous() for k, v in clip.state_dict().items()}, str(other))
    with pytest.raises(ConfigError, match="do not fit"):
        load_backbone("vtr-tiny", other)


def test_mean_pooling_matches_per_frame_clip_embeddings():
    encoder = tiny_model("zero-shot")
    frames, mask, _ = video_batch()
    with torch.no_grad():
        video = encoder.encode_video(frames, mask)
        images = (frames.flatten(0, 1).float() - encoder.pixel_mean) / encoder.pixel_std
        per_frame = torch.nn.functional.normalize(encoder.clip.encode_image(images), dim=-1)
        per_frame = per_frame.view(*frames.shape[:2], -1)
    expected = torch.stack([per_frame[b][mask[b]].mean(0) for b in range(len(frames))])
    torch.testing.assert_close(video, torch.nn.functional.normalize(expected, dim=-1), atol=1e-5, rtol=0)


def test_uint8_and_normalised_float_frames_agree():
    encoder = tiny_model("zero-shot")
    frames, mask, _ = video_batch()
    normalised = (frames.float() - encoder.pixel_mean) / encoder.pixel_std
    with torch.no_grad():
        torch.testing.assert_close(
            encoder.encode_video(frames, mask), encoder.encode_video(normalised, mask), atol=1e-5, rtol=0
        )


def test_short_token_sequences_match_open_clip_at_full_context():
    encoder = tiny_model("zero-shot")
    captions = ["a red square slides left", "a blue circle appears, then a red square slides left"]
    with torch.no_grad():
        ours = encoder.encode_text(tokenize(captions, max_words=32))
        reference = encoder.clip.encode_text(tokenize(captions, max_words=encoder.context_length), normalize=True)
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("frames", "mask", "message"),
    [
        (
            torch.zeros(2, 4, 32, 32, dtype=torch.uint8),
            torch.ones(2, 4, dtype=torch.bool),
            r"\[B, F, 3, H, W\]",
        ),
        (torch.zeros(2, 4, 3, 64, 64, dtype=torch.uint8), torch.ones(2, 4, dtype=torch.bool), "expects"),
        (torch.zeros(2, 4, 3, 32, 32, dtype=torch.int32), torch.ones(2, 4, dtype=torch.bool), "uint8"),
        (torch.zeros(2, 4, 3, 32, 32, dtype=torch.uint8), torch.ones(2, 5, dtype=torch.bool), "frame_mask"),
        (
            torch.zeros(2, 4, 3, 32, 32, dtype=torch.uint8),
            torch.tensor([[1, 1, 0, 0], [0, 0, 0, 0]]),
            r"\[1\]",
        ),
    ],
)
def test_bad_frames_get_a_clear_message(frames, mask, message):
    with pytest.raises(InputError, match=message):
        tiny_model("zero-shot").encode_video(frames, mask)


def test_bad_tokens_get_a_clear_message():
    encoder = tiny_model("zero-shot")
    with pytest.raises(InputError, match="integer tensor"):
        encoder.encode_text(torch.zeros(2, 8))
    with pytest.raises(InputError, match="at most 64"):
        encoder.encode_text(torch.zeros(2, 65, dtype=torch.long))


def test_text_conditioned_head_asks_for_the_query():
    encoder = tiny_model("rap", selection="text-conditioned")
    frames, mask, tokens = video_batch()
    with pytest.raises(InputError, match="text_emb"):
        encoder.encode_video(frames, mask)
    with torch.no_grad():
        per_text = encoder.encode_video(frames, mask, text_emb=encoder.encode_text(tokens[:3]))
    assert per_text.shape == (3, len(frames), 64)
