"""Dataset cards: the six registered cards load, are strict, and each exists once (next to its parser)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from vtrlab.data.benchmarks import get_benchmark
from vtrlab.data.card import CARD_NAMES, card_path, load_card
from vtrlab.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def test_the_six_benchmarks_are_registered():
    assert set(CARD_NAMES) == {"msrvtt", "msvd", "lsmdc", "didemo", "activitynet", "synthetic"}


@pytest.mark.parametrize("name", CARD_NAMES)
def test_cards_load_and_live_next_to_their_parser(name):
    card = load_card(name)
    assert card.name == name and card.parser_name == name
    assert card.num_frames in (12, 32) and card.max_words in (32, 64)
    assert card.stored_frames is None or card.stored_frames > card.num_frames
    assert card.eval_split in card.splits
    path = card_path(name)
    assert path.parent.name == "benchmarks" and path.with_suffix(".py").is_file()
    assert path == get_benchmark(name).card
    assert load_card(path) == card
    copies = [*(REPO / "platform").rglob(f"{name}.yaml"), *REPO.glob(f"*/{name}.yaml")]
    assert sorted(set(copies)) == [path], copies  # one copy of each card


def test_paper_settings():
    assert load_card("msrvtt").splits["train"].videos == 9000
    assert load_card("msrvtt").splits["test"].captions == 1000
    assert load_card("msvd").protocol == "multi-caption"
    for n in ("didemo", "activitynet"):
        c = load_card(n)
        assert c.protocol == "paragraph" and c.num_frames == 32 and c.max_words == 64
    assert load_card("activitynet").eval_split == "val"
    assert load_card("synthetic").image_size == 32


def test_unknown_key_names_key_and_file(tmp_path):
    data = yaml.safe_load(card_path("msvd").read_text())
    data["splits"]["test"]["colour"] = "red"
    data["frobnicate"] = 1
    p = tmp_path / "bad.yaml"
    p.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as ei:
        load_card(p)
    msg = str(ei.value)
    assert str(p) in msg and "frobnicate" in msg and "splits.test.colour" in msg


def test_bad_values_and_unknown_names(tmp_path):
    data = yaml.safe_load(card_path("msvd").read_text())
    data["protocol"] = "two-caption"
    del data["num_frames"]
    p = tmp_path / "bad.yaml"
    p.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as ei:
        load_card(p)
    lines = str(ei.value).splitlines()  # vtrlab.config's formatter: one `file: key: problem` line each
    assert any(line.startswith(f"{p}: protocol: ") and "'two-caption'" in line for line in lines), lines
    assert f"{p}: num_frames: Field required" in lines
    with pytest.raises(ConfigError, match="unknown benchmark"):
        load_card("kinetics")


def test_bad_yaml_names_file_and_line(tmp_path):
    p = tmp_path / "broken.yaml"
    p.write_text("name: msvd\nsplits: [unclosed\n")
    with pytest.raises(ConfigError, match=rf"{re.escape(str(p))}:? line \d+: not valid YAML"):
        load_card(p)
