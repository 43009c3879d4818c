"""Annotation files are data, never code: MSVD's pickle is read without running anything from it; byte-order
marks and LSMDC's trailing tab parse as CLIP4Clip reads them; bad MSVD values get named errors."""

from __future__ import annotations

import builtins
import os
import pickle
import shutil

import pytest

from vtrlab.data.benchmarks.safe_pickle import load_plain_pickle
from vtrlab.data.card import load_card
from vtrlab.data.parsers import parse_annotations
from vtrlab.errors import DataError

CAPS = {"vid_1_2": [["a", "man", "sings"], ["someone", "sings"]], "vid_3_4": [["a", "dog", "runs"]]}


class _System:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _Exec:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (builtins.exec, (f"open({str(self.marker)!r}, 'w').close()",))


class _Plain:
    pass


def _msvd(tmp_path, benchmark_fixtures, caps) -> object:
    ann = tmp_path / "ann"
    shutil.copytree(benchmark_fixtures["msvd"]["annotations"], ann)
    with open(ann / "raw-captions.pkl", "wb") as f:
        pickle.dump(caps, f)
    (ann / "val_list.txt").write_text("vid_1_2\n")
    return ann


@pytest.mark.parametrize("payload", [_System, _Exec])
@pytest.mark.parametrize("protocol", [0, 2, pickle.HIGHEST_PROTOCOL])
def test_crafted_pickle_is_refused_without_running(tmp_path, benchmark_fixtures, payload, protocol):
    marker = tmp_path / "pwned"
    ann = tmp_path / "ann"
    shutil.copytree(benchmark_fixtures["msvd"]["annotations"], ann)
    (ann / "raw-captions.pkl").write_bytes(pickle.dumps({"vid_1_2": payload(marker)}, protocol=protocol))
    with pytest.raises(DataError) as ei:
        parse_annotations(load_card("msvd"), ann, ["val"])
    msg = str(ei.value)
    glob = "posix.system" if payload is _System else "builtins.exec"
    assert str(ann / "raw-captions.pkl") in msg and glob in msg, msg
    assert not marker.exists()


def test_class_instances_and_persistent_ids_are_refused(tmp_path):
    p = tmp_path / "x.pkl"
    p.write_bytes(pickle.dumps({"a": {1, 2}}, protocol=1))  # a set is a global call in protocols 0-3
    with pytest.raises(DataError, match=r"x.pkl: refused: the pickle names the global builtins.set"):
        load_plain_pickle(p)
    p.write_bytes(pickle.dumps({"b": _Plain()}, protocol=4))
    with pytest.raises(
        DataError, match=r"x.pkl: refused: the pickle names the global .*test_data_benchmarks_safety._Plain"
    ):
        load_plain_pickle(p)
    p.write_bytes(b"(i__main__\nEvil\n(dp0\nb.")  # protocol 0 INST
    with pytest.raises(DataError, match=r"x.pkl: refused: the pickle names the global __main__.Evil"):
        load_plain_pickle(p)
    p.write_bytes(b"Pabc\n.")  # PERSID
    with pytest.raises(DataError, match=r"x.pkl: refused: the pickle has a persistent id"):
        load_plain_pickle(p)
    p.write_bytes(pickle.dumps(CAPS)[:-5])
    with pytest.raises(DataError, match=r"x.pkl: cannot read the pickle"):
        load_plain_pickle(p)


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_plain_pickles_of_every_protocol_parse(tmp_path, benchmark_fixtures, protocol):
    ann = _msvd(tmp_path, benchmark_fixtures, CAPS)
    (ann / "raw-captions.pkl").write_bytes(pickle.dumps(CAPS, protocol=protocol))
    p = parse_annotations(load_card("msvd"), ann, ["val"])
    assert p["val"][0].video_id == "vid_1_2"
    assert p["val"][0].captions == ["a man sings", "someone sings"]


def test_python2_pickle_of_byte_strings_parses(tmp_path):
    # what Python 2 writes for {"v": [["a", "caf\xc3\xa9"]]} with protocol 2: SHORT_BINSTRING, UTF-8 bytes
    data = b"\x80\x02}q\x00U\x01vq\x01]q\x02]q\x03(U\x01aq\x04U\x05caf\xc3\xa9q\x05eas."
    p = tmp_path / "py2.pkl"
    p.write_bytes(data)
    assert load_plain_pickle(p) == {"v": [["a", "café"]]}


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("a man sings", r"key 'vid_1_2': expected a list of captions .* got str"),
        (["a man sings"], r"key 'vid_1_2'\[0\]: expected a caption as a list of token strings"),
        ([["a", 3]], r"key 'vid_1_2'\[0\]: expected a caption as a list of token strings"),
        ({"a": 1}, r"key 'vid_1_2': expected a list of captions .* got dict"),
        (None, r"key 'vid_1_2': expected a list of captions .* got NoneType"),
        ([], r"key 'vid_1_2': no captions"),
    ],
)
def test_msvd_bad_value_names_file_and_key(tmp_path, benchmark_fixtures, value, match):
    ann = _msvd(tmp_path, benchmark_fixtures, {"vid_1_2": value})
    with pytest.raises(DataError, match=r"raw-captions.pkl: " + match):
        parse_annotations(load_card("msvd"), ann, ["val"])


def test_msvd_not_a_dict(tmp_path, benchmark_fixtures):
    ann = _msvd(tmp_path, benchmark_fixtures, [["a"]])
    with pytest.raises(DataError, match=r"raw-captions.pkl: expected a dict"):
        parse_annotations(load_card("msvd"), ann, ["val"])


def _with_bom(p):
    p.write_bytes(b"\xef\xbb\xbf" + p.read_bytes())


def test_byte_order_marks_parse(tmp_path, benchmark_fixtures):
    for name in ("msrvtt", "msvd", "lsmdc", "didemo", "activitynet"):
        ann = tmp_path / name
        shutil.copytree(benchmark_fixtures[name]["annotations"], ann)
        expected = parse_annotations(load_card(name), ann)
        for f in ann.iterdir():
            if f.suffix in (".csv", ".json", ".txt"):
                _with_bom(f)
        got = parse_annotations(load_card(name), ann)
        assert {k: [it.to_dict() for it in v] for k, v in got.items()} == {
            k: [it.to_dict() for it in v] for k, v in expected.items()
        }, name


def test_msrvtt_csv_with_bom_keeps_the_video_id_column(tmp_path, benchmark_fixtures):
    ann = tmp_path / "ann"
    shutil.copytree(benchmark_fixtures["msrvtt"]["annotations"], ann)
    (ann / "MSRVTT_train.9k.csv").write_bytes(b"\xef\xbb\xbfvideo_id\r\nvideo0\r\n")
    p = parse_annotations(load_card("msrvtt"), ann, ["train"])
    assert [it.video_id for it in p["train"]] == ["video0"]


def test_lsmdc_trailing_tab_is_accepted(tmp_path, benchmark_fixtures):
    ann = tmp_path / "ann"
    shutil.copytree(benchmark_fixtures["lsmdc"]["annotations"], ann)
    f = ann / "LSMDC16_annos_val.csv"
    expected = parse_annotations(load_card("lsmdc"), ann, ["val"])["val"]
    f.write_text(f.read_text().replace("\n", "\t\r\n"))
    got = parse_annotations(load_card("lsmdc"), ann, ["val"])["val"]
    assert [it.to_dict() for it in got] == [it.to_dict() for it in expected]
    assert got[0].captions[0].endswith(".")
    f.write_text("clip\t1\t2\t3\t4\tsentence\textra\n")  # a 7th field that is not empty stays an error
    with pytest.raises(DataError, match=r"LSMDC16_annos_val.csv: line 1: expected 6 tab-separated columns"):
        parse_annotations(load_card("lsmdc"), ann, ["val"])
