"""Galleries that cannot shrink silently: an evaluation split short of the card's sizes is refused before
anything starts, unless the run allows it; then the skipped videos stay in the gallery as zero-frame clips
(their captions still queries) and every result says how large the gallery was."""

from __future__ import annotations

import pytest
import torch

from model_helpers import tiny_model
from vtrlab.config import TrainSpec
from vtrlab.data.build import build
from vtrlab.data.card import load_card
from vtrlab.data.gallery import MissingVideo, eval_gallery
from vtrlab.data.loader import make_eval_loader
from vtrlab.data.shards import read_manifest
from vtrlab.errors import ConfigError, DataError
from vtrlab.train.evaluate import encode_split, evaluate, score_videos
from vtrlab.train.metrics import retrieval_metrics
from vtrlab.train.preflight import check_eval_gallery

UNDECODABLE = "5HAf_INrFy0_3_25"  # the MSVD fixture's test video that is not a video file


@pytest.fixture(scope="module")
def short_msvd(benchmark_fixtures, tmp_path_factory) -> str:
    """The MSVD fixture's test split (2 videos of 4 captions, one undecodable) built against a card that
    expects both videos: the build keeps 1 video and 4 captions."""
    fx = benchmark_fixtures["msvd"]
    card = load_card("msvd")
    splits = {**card.splits, "test": card.splits["test"].model_copy(update={"videos": 2, "captions": 8})}
    out = str(tmp_path_factory.mktemp("gallery") / "msvd")
    build(card.model_copy(update={"splits": splits}), fx["annotations"], fx["videos"], out, ["test"],
          num_frames=3, image_size=32, executor="local")  # fmt: skip
    return out


def test_a_short_split_is_refused_naming_url_counts_and_skipped_videos(short_msvd):
    with pytest.raises(DataError) as err:
        eval_gallery(read_manifest(short_msvd), "test", short_msvd)
    message = str(err.value)
    assert short_msvd in message and "holds 1 videos and 4 captions, the card expects 2 and 8" in message
    assert UNDECODABLE in message and "allow_missing: true" in message
    with pytest.raises(ConfigError, match=r"^sweep.yaml: .*the card expects 2 and 8"):
        check_eval_gallery(read_manifest(short_msvd), short_msvd, "test", False, "sweep.yaml")


def test_allowed_the_skipped_videos_stay_with_their_captions(short_msvd, capsys):
    gallery = eval_gallery(read_manifest(short_msvd), "test", short_msvd, allow_missing=True)
    assert (gallery.videos, gallery.captions, gallery.eval_videos, gallery.eval_captions) == (1, 4, 2, 8)
    assert [m.video_id for m in gallery.missing] == [UNDECODABLE] and len(gallery.missing[0].captions) == 4
    check_eval_gallery(read_manifest(short_msvd), short_msvd, "test", True, "sweep.yaml")
    assert "1 missing ones as zero-frame clips" in capsys.readouterr().err


def test_a_split_as_large_as_the_card_passes(synth_small):
    gallery = eval_gallery(read_manifest(synth_small), "test", synth_small)
    assert gallery.missing == [] and gallery.eval_videos == gallery.expected["videos"]


def test_evaluation_ranks_over_the_full_gallery(short_msvd):
    """The zero-frame clip scores 0 with every caption; its captions are queries over both videos."""
    encoder = tiny_model()
    loader = make_eval_loader(short_msvd, "test", batch_size=4, num_frames=3, max_words=16)
    gallery = eval_gallery(read_manifest(short_msvd), "test", short_msvd, allow_missing=True)
    got = evaluate(encoder, loader, gallery=gallery, max_words=16)
    assert (got["eval_videos"], got["eval_captions"], got["eval_missing_videos"]) == (2.0, 8.0, 1.0)

    from vtrlab.model.tokenizer import tokenize

    split = encode_split(encoder, loader)
    missing = gallery.missing[0]
    with torch.no_grad():
        text = torch.cat([split.text, encoder.encode_text(tokenize(missing.captions, 16))])
    sim = torch.cat([score_videos(encoder, text, split.videos), torch.zeros(8, 1)], dim=1)
    owner = torch.cat([split.owner, torch.ones(4, dtype=torch.long)])
    expected = retrieval_metrics(sim, owner)
    assert {k: got[k] for k in expected} == pytest.approx(expected)
    plain = evaluate(encoder, loader)  # without a gallery: the shards alone, and it says so
    assert (plain["eval_videos"], plain["eval_captions"], plain["eval_missing_videos"]) == (1.0, 4.0, 0.0)


def test_missing_videos_need_max_words(short_msvd):
    loader = make_eval_loader(short_msvd, "test", batch_size=4, num_frames=3, max_words=16)
    gallery = eval_gallery(read_manifest(short_msvd), "test", short_msvd, allow_missing=True)
    assert gallery.missing == [MissingVideo(UNDECODABLE, gallery.missing[0].captions)]
    with pytest.raises(ValueError, match="max_words"):
        evaluate(tiny_model(), loader, gallery=gallery)


def test_allow_missing_is_a_training_field():
    fields = {"benchmark": "synthetic", "method": "zero-shot", "data": "x"}
    assert TrainSpec(**fields).allow_missing is False
    assert TrainSpec(**fields, allow_missing=True).allow_missing is True


def test_vtrlab_train_refuses_a_short_gallery_before_any_run(short_msvd, tmp_path):
    """One line naming the data and the counts, exit 2, and no MLflow run (nothing started)."""
    import os

    from servers import run_vtrlab

    db = tmp_path / "mlflow.db"
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{db}", "VTRLAB_HOME": str(tmp_path / "home")}
    args = ["train", "--benchmark", "msvd", "--method", "zero-shot", "--data", short_msvd, "--train-split", "test"]
    result = run_vtrlab(args, env, timeout=300)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert short_msvd in lines[0] and "the card expects 2 and 8" in lines[0]
    if db.exists():
        from mlflow.tracking import MlflowClient

        client = MlflowClient(f"sqlite:///{db}")
        experiments = [e.experiment_id for e in client.search_experiments()]
        assert client.search_runs(experiments) == []
