"""The malformed-input corpus of the data family (`vtrlab data build | inspect | synth`): every case is one
command line whose input the test writes into the case's folder; it must exit 2 (bad input) with one line
naming the culprit and leave nothing behind (harness: tests/badinput.py). A new input kind is one line in
its family's list. Builds run with `--executor local` (no Ray); the valid inputs they spoil are the session's
benchmark fixtures (tests/conftest.py) and one small dataset built once for this module.
"""

# ruff: noqa: E501  (the case tables: one case per line)

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from badinput import BadInput, check, run_cli
from vtrlab.data.build import build
from vtrlab.data.shards import MANIFEST

FX: dict = {}  # the benchmark fixtures and the built dataset, set once by the module fixture


@pytest.fixture(scope="module", autouse=True)
def valid_inputs(benchmark_fixtures, tmp_path_factory):
    """Valid inputs the cases copy and spoil: the benchmark fixtures, and LSMDC's test split built as 2 shards."""
    fx = benchmark_fixtures["lsmdc"]
    built = tmp_path_factory.mktemp("bad-input-data") / "lsmdc"
    build("lsmdc", fx["annotations"], fx["videos"], str(built), ["test"], executor="local", **SMALL)
    FX.update(benchmark_fixtures)
    FX["built"] = built
    yield
    FX.clear()


SMALL = {"num_frames": 2, "image_size": 16, "shard_samples": 1}


# ---- helpers: a case's inputs ---------------------------------------------------------------------------


def annotations(folder: Path, name: str) -> Path:
    """A copy of benchmark ``name``'s fixture annotations in ``folder``."""
    return Path(shutil.copytree(FX[name]["annotations"], folder / "ann"))


def build_argv(name: str, folder: Path, ann: Path | None = None, *extra: str, videos: Path | None = None) -> list:
    """`vtrlab data build NAME` of the case's annotations (default: the fixture's) into ``folder/out``."""
    return [
        "data", "build", name,
        "--annotations", str(ann or FX[name]["annotations"]),
        "--videos", str(videos or FX[name]["videos"]),
        "--out", str(folder / "out"),
        "--executor", "local", "--num-frames", "2", "--image-size", "16", "--shard-samples", "1",
        *extra,
    ]  # fmt: skip


def spoiled(name: str, file: str, content: str | bytes | Callable[[Path], object], *extra: str) -> Callable:
    """argv of a build whose annotation ``file`` is replaced by ``content`` (text, bytes, a JSON-able value
    made by ``content(original)``)."""

    def argv(folder: Path) -> list:
        ann = annotations(folder, name)
        p = ann / file
        if callable(content):
            p.write_text(json.dumps(content(p)), encoding="utf-8")
        elif isinstance(content, bytes):
            p.write_bytes(content)
        else:
            p.write_text(content, encoding="utf-8")
        return build_argv(name, folder, ann, *extra)

    return argv


def edited_json(edit: Callable[[object], object]) -> Callable[[Path], object]:
    """``content`` for :func:`spoiled`: the original JSON file's value, passed through ``edit``."""

    def content(p: Path) -> object:
        return edit(json.loads(p.read_text(encoding="utf-8")))

    return content


def setter(path: list, value: object) -> Callable[[object], object]:
    """An ``edit`` that sets ``value`` at ``path`` (keys and indices) of a JSON value."""

    def edit(data: object) -> object:
        at = data
        for key in path[:-1]:
            at = at[key]
        at[path[-1]] = value
        return data

    return edit


def first_value(edit: Callable[[dict], None]) -> Callable[[object], object]:
    """An ``edit`` of the first entry of a JSON object (ActivityNet's captions)."""

    def apply(data: dict) -> dict:
        edit(next(iter(data.values())))
        return data

    return apply


LATIN1 = "video_id\nvid\xe9o0\n".encode("latin-1")
NESTED = "[" * 100_000 + "]" * 100_000
HUGE_INT = '{"sentences": [{"video_id": "video0", "caption": ' + "9" * 5000 + "}]}"
MSRVTT_TEST_HEAD = "key,vid_key,video_id,sentence\n"
LSMDC_ROW = "1001_Flight_00.00.22.000-00.00.24.500\t00.00.01.000\t00.00.03.000\t00.00.01.000\t00.00.03.000\tA thing.\n"


def lsmdc_row(clip_id: str) -> str:
    return LSMDC_ROW.replace("1001_Flight_00.00.22.000-00.00.24.500", clip_id)


# ---- annotation files, per benchmark -------------------------------------------------------------------

MSRVTT_DATA, MSRVTT_TRAIN, MSRVTT_TEST = "MSRVTT_data.json", "MSRVTT_train.9k.csv", "MSRVTT_JSFUSION_test.csv"


def out_left(folder: Path) -> list[Path]:
    return [folder / "out"]


ANNOTATION_CASES = [
    # MSR-VTT
    BadInput("msrvtt-data-not-utf8", spoiled("msrvtt", MSRVTT_DATA, b'{"sentences": "\xff\xfe"}'), MSRVTT_DATA, leftover=out_left),
    BadInput("msrvtt-train-not-utf8", spoiled("msrvtt", MSRVTT_TRAIN, LATIN1), MSRVTT_TRAIN, leftover=out_left),
    BadInput("msrvtt-test-not-utf8", spoiled("msrvtt", MSRVTT_TEST, MSRVTT_TEST_HEAD.encode() + b"r,m,v\xe9,s\n"), MSRVTT_TEST, leftover=out_left),
    BadInput("msrvtt-caption-list", spoiled("msrvtt", MSRVTT_DATA, edited_json(setter(["sentences", 0, "caption"], ["a", "list"]))), "sentences[0].caption", leftover=out_left),
    BadInput("msrvtt-caption-null", spoiled("msrvtt", MSRVTT_DATA, edited_json(setter(["sentences", 0, "caption"], None))), "sentences[0].caption", leftover=out_left),
    BadInput("msrvtt-caption-number", spoiled("msrvtt", MSRVTT_DATA, edited_json(setter(["sentences", 1, "caption"], 7))), "sentences[1].caption", leftover=out_left),
    BadInput("msrvtt-caption-blank", spoiled("msrvtt", MSRVTT_DATA, edited_json(setter(["sentences", 2, "caption"], "  "))), "sentences[2].caption", leftover=out_left),
    BadInput("msrvtt-caption-video-id-dict", spoiled("msrvtt", MSRVTT_DATA, edited_json(setter(["sentences", 0, "video_id"], {"a": 1}))), "sentences[0].video_id", leftover=out_left),
    BadInput("msrvtt-sentences-not-list", spoiled("msrvtt", MSRVTT_DATA, edited_json(setter(["sentences"], {"video0": "x"}))), "sentences", leftover=out_left),
    BadInput("msrvtt-no-sentences", spoiled("msrvtt", MSRVTT_DATA, '{"videos": []}'), "'sentences'", leftover=out_left),
    BadInput("msrvtt-data-not-json", spoiled("msrvtt", MSRVTT_DATA, '{"sentences": [,]}'), MSRVTT_DATA, leftover=out_left),
    BadInput("msrvtt-data-nested", spoiled("msrvtt", MSRVTT_DATA, NESTED), MSRVTT_DATA, leftover=out_left),
    BadInput("msrvtt-data-huge-int", spoiled("msrvtt", MSRVTT_DATA, HUGE_INT), MSRVTT_DATA, leftover=out_left),
    BadInput("msrvtt-test-field-2mb", spoiled("msrvtt", MSRVTT_TEST, MSRVTT_TEST_HEAD + 'r,m,video5,"' + "x" * (2 << 20) + '"\n'), MSRVTT_TEST, leftover=out_left),
    BadInput("msrvtt-test-sentence-blank", spoiled("msrvtt", MSRVTT_TEST, MSRVTT_TEST_HEAD + "r,m,video5,   \n"), "sentence", leftover=out_left),
    BadInput("msrvtt-train-no-column", spoiled("msrvtt", MSRVTT_TRAIN, "vid\nvideo0\n"), "video_id", leftover=out_left),
    BadInput("msrvtt-train-id-dotdot", spoiled("msrvtt", MSRVTT_TRAIN, "video_id\n../../../video9770\n"), "../../../video9770", leftover=out_left),
    BadInput("msrvtt-test-id-absolute", spoiled("msrvtt", MSRVTT_TEST, MSRVTT_TEST_HEAD + "r,m,/etc/video7020,a sentence\n"), "/etc/video7020", leftover=out_left),
    BadInput("msrvtt-train-id-backslash", spoiled("msrvtt", MSRVTT_TRAIN, "video_id\n..\\..\\video1\n"), "video1", leftover=out_left),
    BadInput("msrvtt-train-id-control-char", spoiled("msrvtt", MSRVTT_TRAIN, "video_id\nvid\x01eo0\n"), "line 2", leftover=out_left),
    BadInput("msrvtt-train-empty", spoiled("msrvtt", MSRVTT_TRAIN, "video_id\n"), MSRVTT_TRAIN, leftover=out_left),
    BadInput("msrvtt-train-id-without-caption", spoiled("msrvtt", MSRVTT_TRAIN, "video_id\nvideo99\n"), "video99", leftover=out_left),
    # MSVD
    BadInput("msvd-pickle-garbage", spoiled("msvd", "raw-captions.pkl", b"not a pickle at all"), "raw-captions.pkl", leftover=out_left),
    BadInput("msvd-list-not-utf8", spoiled("msvd", "train_list.txt", b"-4wsuPCjDBc_5_15\n\xff\xfe\n"), "train_list.txt", leftover=out_left),
    BadInput("msvd-list-id-dotdot", spoiled("msvd", "train_list.txt", "../../-4wsuPCjDBc_5_15\n"), "../../-4wsuPCjDBc_5_15", leftover=out_left),
    BadInput("msvd-list-empty", spoiled("msvd", "train_list.txt", "\n\n"), "train_list.txt", leftover=out_left),
    BadInput("msvd-list-unknown-id", spoiled("msvd", "val_list.txt", "no_such_video\n"), "no_such_video", leftover=out_left),
    # LSMDC
    BadInput("lsmdc-empty-file", spoiled("lsmdc", "LSMDC16_challenge_1000_publictect.csv", ""), "LSMDC16_challenge_1000_publictect.csv", leftover=out_left),
    BadInput("lsmdc-five-columns", spoiled("lsmdc", "LSMDC16_annos_val.csv", "a\tb\tc\td\te\n"), "LSMDC16_annos_val.csv", leftover=out_left),
    BadInput("lsmdc-not-utf8", spoiled("lsmdc", "LSMDC16_annos_training.csv", lsmdc_row("x").encode() + b"\xff\n"), "LSMDC16_annos_training.csv", leftover=out_left),
    BadInput("lsmdc-clip-absolute", spoiled("lsmdc", "LSMDC16_annos_val.csv", lsmdc_row("/etc/1001_Flight_x")), "/etc/1001_Flight_x", leftover=out_left),
    BadInput("lsmdc-clip-dotdot", spoiled("lsmdc", "LSMDC16_annos_val.csv", lsmdc_row("../1001_Flight_y")), "../1001_Flight_y", leftover=out_left),
    # DiDeMo
    BadInput("didemo-description-list", spoiled("didemo", "train_data.json", edited_json(setter([0, "description"], ["a"]))), "description", leftover=out_left),
    BadInput("didemo-video-null", spoiled("didemo", "train_data.json", edited_json(setter([1, "video"], None))), "entry [1].video", leftover=out_left),
    BadInput("didemo-data-not-list", spoiled("didemo", "val_data.json", lambda p: {"video": "x"}), "val_data.json", leftover=out_left),
    BadInput("didemo-entry-no-times", spoiled("didemo", "test_data.json", lambda p: [{"video": "a.mov", "description": "x"}]), "'times'", leftover=out_left),
    BadInput("didemo-list-id-dotdot", spoiled("didemo", "val_list.txt", "../../secret.mov\n"), "../../secret.mov", leftover=out_left),
    BadInput("didemo-list-not-utf8", spoiled("didemo", "val_list.txt", b"\xc3\x28\n"), "val_list.txt", leftover=out_left),
    # ActivityNet
    BadInput("activitynet-duration-infinity", spoiled("activitynet", "train.json", "{\"v_AAAAAAAAAAA\": {\"duration\": Infinity, \"timestamps\": [], \"sentences\": [\"a\"]}}"), "duration", leftover=out_left),
    BadInput("activitynet-duration-nan", spoiled("activitynet", "train.json", edited_json(first_value(lambda e: e.update(duration=float("nan"))))), "duration", leftover=out_left),
    BadInput("activitynet-duration-negative", spoiled("activitynet", "val_1.json", edited_json(first_value(lambda e: e.update(duration=-4.2)))), "duration", leftover=out_left),
    BadInput("activitynet-duration-string", spoiled("activitynet", "train.json", edited_json(first_value(lambda e: e.update(duration="4 s")))), "duration", leftover=out_left),
    BadInput("activitynet-duration-bool", spoiled("activitynet", "train.json", edited_json(first_value(lambda e: e.update(duration=True)))), "duration", leftover=out_left),
    BadInput("activitynet-sentence-null", spoiled("activitynet", "train.json", edited_json(first_value(lambda e: e["sentences"].append(None)))), "sentences[2]", leftover=out_left),
    BadInput("activitynet-sentences-empty", spoiled("activitynet", "train.json", edited_json(first_value(lambda e: e.update(sentences=[])))), "sentences", leftover=out_left),
    BadInput("activitynet-ids-not-list", spoiled("activitynet", "train_ids.json", '{"v_AAAAAAAAAAA": 1}'), "train_ids.json", leftover=out_left),
    BadInput("activitynet-id-number", spoiled("activitynet", "train_ids.json", "[5]"), "train_ids.json", leftover=out_left),
    BadInput("activitynet-id-absolute", spoiled("activitynet", "val_ids.json", '["/etc/v_DDDDDDDDDDD"]'), "/etc/v_DDDDDDDDDDD", leftover=out_left),
    BadInput("activitynet-data-not-object", spoiled("activitynet", "train.json", "[1, 2]"), "train.json", leftover=out_left),
    BadInput("activitynet-data-not-json", spoiled("activitynet", "val_1.json", "{'single': 'quotes'}"), "val_1.json", leftover=out_left),
]  # fmt: skip


# ---- build options, folders and the videos --------------------------------------------------------------


def with_out(make: Callable[[Path], Path]) -> Callable[[Path], list]:
    """A build whose ``--out`` is ``make(folder)``."""

    def argv(folder: Path) -> list:
        args = build_argv("lsmdc", folder, None, "--splits", "test")
        args[args.index("--out") + 1] = str(make(folder))
        return args

    return argv


def a_file(folder: Path) -> Path:
    p = folder / "taken"
    p.write_text("a file, not a folder")
    return p


def garbage_videos(folder: Path) -> list:
    """LSMDC's test split with videos that do not decode."""
    vids = folder / "videos" / "1001_Flight"
    vids.mkdir(parents=True)
    for line in (FX["lsmdc"]["annotations"] / "LSMDC16_challenge_1000_publictect.csv").read_text().splitlines():
        (vids / f"{line.split(chr(9))[0]}.avi").write_bytes(b"not a video" * 20)
    return build_argv("lsmdc", folder, None, "--splits", "test", videos=folder / "videos")


def card_file(text: str | bytes) -> Callable[[Path], list]:
    """A build of the LSMDC fixture with the card file ``text``."""

    def argv(folder: Path) -> list:
        card = folder / "card.yaml"
        card.write_bytes(text if isinstance(text, bytes) else text.encode())
        args = build_argv("lsmdc", folder)
        args[2] = str(card)
        return args

    return argv


def no_videos(folder: Path) -> list:
    (folder / "empty").mkdir()
    return build_argv("lsmdc", folder, None, "--splits", "test", videos=folder / "empty")


def deleted(name: str, file: str) -> Callable[[Path], list]:
    def argv(folder: Path) -> list:
        ann = annotations(folder, name)
        (ann / file).unlink()
        return build_argv(name, folder, ann)

    return argv


def linked_videos(folder: Path) -> list:
    """LSMDC's videos as links to the fixture's files, which lie outside the --videos folder."""
    source = Path(FX["lsmdc"]["videos"])
    for video in source.rglob("*.avi"):
        link = folder / "videos" / video.relative_to(source)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(video)
    return build_argv("lsmdc", folder, None, "--splits", "test", videos=folder / "videos")


def option(*extra: str) -> Callable[[Path], list]:
    return lambda folder: build_argv("lsmdc", folder, None, "--splits", "test", *extra)


LSMDC_CARD = (Path(__file__).parents[1] / "platform/vtrlab/data/benchmarks/lsmdc.yaml").read_text()

BUILD_CASES = [
    BadInput("shard-samples-zero", option("--shard-samples", "0"), "--shard-samples", leftover=out_left),
    BadInput("shard-samples-negative", option("--shard-samples", "-1"), "--shard-samples", leftover=out_left),
    BadInput("image-size-zero", option("--image-size", "0"), "--image-size", leftover=out_left),
    BadInput("image-size-huge", option("--image-size", "100000"), "--image-size", leftover=out_left),
    BadInput("num-frames-zero", option("--num-frames", "0"), "--num-frames", leftover=out_left),
    BadInput("num-frames-negative", option("--num-frames", "-3"), "--num-frames", leftover=out_left),
    BadInput("stored-frames-zero", option("--stored-frames", "0"), "--stored-frames", leftover=out_left),
    BadInput("stored-frames-below-num-frames", option("--num-frames", "4", "--stored-frames", "2"), "--stored-frames", leftover=out_left),
    BadInput("frame-format-unknown", option("--frame-format", "gif"), "--frame-format", leftover=out_left),
    BadInput("executor-unknown", option("--executor", "threads"), "--executor", leftover=out_left),
    BadInput("num-cpus-zero", option("--num-cpus", "0"), "--num-cpus", leftover=out_left),
    BadInput("split-unknown", option("--splits", "nope"), "nope", leftover=out_left),
    BadInput("out-is-a-file", with_out(a_file), lambda d: str(d / "taken")),
    BadInput("out-inside-a-file", with_out(lambda d: a_file(d) / "sub"), lambda d: str(d / "taken")),
    BadInput("out-unknown-scheme", with_out(lambda d: "ftp://host/data"), "ftp://host/data"),
    BadInput("out-s3-without-bucket", with_out(lambda d: "s3:///prefix"), "s3:///prefix"),
    BadInput("annotations-missing", lambda d: build_argv("lsmdc", d, d / "nowhere"), lambda d: str(d / "nowhere"), leftover=out_left),
    BadInput("annotations-is-a-file", lambda d: build_argv("lsmdc", d, a_file(d)), lambda d: str(d / "taken"), leftover=out_left),
    BadInput("annotation-file-missing", deleted("lsmdc", "LSMDC16_annos_val.csv"), "LSMDC16_annos_val.csv", leftover=out_left),
    BadInput("videos-missing", lambda d: build_argv("lsmdc", d, videos=d / "novideos"), lambda d: str(d / "novideos"), leftover=out_left),
    BadInput("no-video-found", no_videos, "split 'test'", leftover=out_left),
    BadInput("no-video-decodes", garbage_videos, "split 'test'", leftover=out_left),
    BadInput("benchmark-unknown", lambda d: ["data", "build", "kinetics", *build_argv("lsmdc", d)[3:]], "kinetics", leftover=out_left),
    BadInput("card-file-missing", lambda d: ["data", "build", str(d / "card.yaml"), *build_argv("lsmdc", d)[3:]], lambda d: str(d / "card.yaml"), leftover=out_left),
    BadInput("card-num-frames-zero", card_file(LSMDC_CARD.replace("num_frames: 12", "num_frames: 0")), "num_frames", leftover=out_left),
    BadInput("card-unknown-key", card_file(LSMDC_CARD + "colour: blue\n"), "colour", leftover=out_left),
    BadInput("card-not-utf8", card_file(LSMDC_CARD.encode().replace(b"description: ", b"description: \xff", 1)), "card.yaml", leftover=out_left),
    BadInput("card-annotation-outside", card_file(LSMDC_CARD.replace("test: LSMDC16_challenge", "test: ../../LSMDC16_challenge")), "annotations.test", leftover=out_left),
    BadInput("card-not-yaml", card_file("name: [lsmdc\n"), "card.yaml", leftover=out_left),
    BadInput("synth-size-unknown", lambda d: ["data", "synth", "--out", str(d / "out"), "--size", "huge"], "--size", leftover=out_left),
    BadInput("synth-seed-negative", lambda d: ["data", "synth", "--out", str(d / "out"), "--seed", "-1"], "--seed", leftover=out_left),
    BadInput("video-links-out-of-the-folder", linked_videos, "outside the videos folder", leftover=out_left),
    BadInput("synth-out-is-a-file", lambda d: ["data", "synth", "--out", str(a_file(d))], lambda d: str(d / "taken")),
]  # fmt: skip


# ---- manifests and shards: `vtrlab data inspect` of a spoiled copy of a built dataset ----------------------


def dataset(folder: Path) -> Path:
    return Path(shutil.copytree(FX["built"], folder / "ds"))


def manifest_edit(edit: Callable[[dict], object], *extra: str) -> Callable[[Path], list]:
    """`vtrlab data inspect --json` of a copy whose manifest is ``edit(manifest)`` (or the manifest ``edit``
    changed in place when it returns None); a str or bytes result is written as it is."""

    def argv(folder: Path) -> list:
        ds = dataset(folder)
        man = json.loads((ds / MANIFEST).read_text())
        new = edit(man)
        new = man if new is None else new
        if isinstance(new, bytes):
            (ds / MANIFEST).write_bytes(new)
        elif isinstance(new, str):
            (ds / MANIFEST).write_text(new)
        else:
            (ds / MANIFEST).write_text(json.dumps(new))
        return ["data", "inspect", str(ds), "--json", *extra]

    return argv


def shard0(man: dict) -> dict:
    return man["splits"]["test"]["shards"][0]


def sibling_link(folder: Path) -> list:
    """A shard that is a link to a file of a sibling folder."""
    ds = dataset(folder)
    (folder / "sibling").mkdir()
    target = folder / "sibling" / "shard.tar"
    shutil.copyfile(ds / "test/shard-000000.tar", target)
    (ds / "test/shard-000000.tar").unlink()
    os.symlink(target, ds / "test/shard-000000.tar")
    return ["data", "inspect", str(ds), "--json"]


MANIFEST_CASES = [
    BadInput("manifest-no-splits", manifest_edit(lambda m: m.pop("splits") and None), "splits"),
    BadInput("manifest-newer-format", manifest_edit(lambda m: m.update(format="vtrlab-shards/2")), "version 2"),
    BadInput("manifest-other-format", manifest_edit(lambda m: m.update(format="webdataset")), "format"),
    BadInput("manifest-not-json", manifest_edit(lambda m: "{not json"), MANIFEST),
    BadInput("manifest-not-utf8", manifest_edit(lambda m: b'{"format": "\xff"}'), MANIFEST),
    BadInput("manifest-a-list", manifest_edit(lambda m: [m]), MANIFEST),
    BadInput("manifest-nested", manifest_edit(lambda m: NESTED), MANIFEST),
    BadInput("manifest-missing", lambda d: ["data", "inspect", str(d), "--json"], MANIFEST),
    BadInput("manifest-splits-not-object", manifest_edit(lambda m: m.update(splits=["test"])), "splits"),
    BadInput("manifest-split-no-shards", manifest_edit(lambda m: m["splits"]["test"].pop("shards") and None), "splits.test.shards"),
    BadInput("manifest-shards-not-list", manifest_edit(lambda m: m["splits"]["test"].update(shards="all")), "splits.test.shards"),
    BadInput("manifest-samples-string", manifest_edit(lambda m: shard0(m).update(samples="three")), "samples"),
    BadInput("manifest-samples-negative", manifest_edit(lambda m: m["splits"]["test"].update(videos=-1)), "splits.test.videos"),
    BadInput("manifest-sha256-not-hex", manifest_edit(lambda m: shard0(m).update(sha256="0" * 63 + "g")), "sha256"),
    BadInput("manifest-counts-disagree", manifest_edit(lambda m: m["splits"]["test"].update(samples=7)), "splits.test.samples"),
    BadInput("manifest-name-null", manifest_edit(lambda m: m.update(name=None)), "name"),
    BadInput("manifest-long-value", manifest_edit(lambda m: shard0(m).update(sha256="f" * 100_000)), "sha256"),
    BadInput("shard-path-dotdot", manifest_edit(lambda m: shard0(m).update(path="../lsmdc-other/test/shard-000000.tar")), "../lsmdc-other"),
    BadInput("shard-path-absolute", manifest_edit(lambda m: shard0(m).update(path="/etc/passwd")), "/etc/passwd"),
    BadInput("shard-path-url", manifest_edit(lambda m: shard0(m).update(path="s3://elsewhere/shard.tar")), "s3://elsewhere"),
    BadInput("shard-path-backslash", manifest_edit(lambda m: shard0(m).update(path="test\\..\\..\\x.tar")), "x.tar"),
    BadInput("shard-path-sibling-link", sibling_link, "shard-000000.tar"),
    BadInput("shard-path-not-string", manifest_edit(lambda m: shard0(m).update(path=["test", "shard.tar"])), "path"),
]  # fmt: skip


# ---- `vtrlab data inspect`: shard contents, options ---------------------------------------------------------


def spoiled_shard(spoil: Callable[[Path], None], *args: str) -> Callable[[Path], list]:
    """`vtrlab data inspect DS ARGS` of a copy whose first test shard is spoiled by ``spoil(path)``."""

    def argv(folder: Path) -> list:
        ds = dataset(folder)
        spoil(ds / "test/shard-000000.tar")
        return ["data", "inspect", str(ds), *[a.replace("{folder}", str(folder)) for a in args]]

    return argv


def flip(path: Path) -> None:
    """Flip bytes in the middle of a frame (the tar still parses)."""
    data = bytearray(path.read_bytes())
    for i in range(len(data) // 2, len(data) // 2 + 64):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:700])


def crafted_sample(edit: Callable[[dict], object]) -> Callable[[Path], list]:
    """A contact sheet of a copy whose first sample's JSON is ``edit(meta)`` (or ``meta`` edited in place),
    with the manifest's sha256 and size made to match: a crafted dataset, not a corrupt one."""

    def argv(folder: Path) -> list:
        ds = dataset(folder)
        shard = ds / "test/shard-000000.tar"
        members = []
        with tarfile.open(shard) as tar:
            for info in tar.getmembers():
                data = tar.extractfile(info).read()
                if info.name.endswith(".json"):
                    meta = json.loads(data)
                    new = edit(meta)
                    data = json.dumps(meta if new is None else new).encode()
                members.append((info.name, data))
        with tarfile.open(shard, "w", format=tarfile.USTAR_FORMAT) as tar:
            for name, data in members:
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        man = json.loads((ds / MANIFEST).read_text())
        entry = man["splits"]["test"]["shards"][0]
        entry["sha256"] = hashlib.sha256(shard.read_bytes()).hexdigest()
        entry["bytes"] = shard.stat().st_size
        (ds / MANIFEST).write_text(json.dumps(man))
        return ["data", "inspect", str(ds), "--json", "--sheet", str(folder / "sheet.png")]

    return argv


def inspect(*args: str) -> Callable[[Path], list]:
    def argv(folder: Path) -> list:
        ds = dataset(folder)
        return ["data", "inspect", str(ds), *[a.replace("{folder}", str(folder)) for a in args]]

    return argv


SHEET = ["--sheet", "{folder}/sheet.png"]


def sheet_left(folder: Path) -> list[Path]:
    return [folder / "sheet.png"]


INSPECT_CASES = [
    BadInput("verify-flipped-bytes", spoiled_shard(flip, "--json", "--verify"), "shard-000000.tar"),
    BadInput("sheet-flipped-bytes", spoiled_shard(flip, *SHEET), "shard-000000.tar", leftover=sheet_left),
    BadInput("verify-truncated", spoiled_shard(truncate, "--json", "--verify"), "shard-000000.tar"),
    BadInput("sheet-truncated", spoiled_shard(truncate, *SHEET), "shard-000000.tar", leftover=sheet_left),
    BadInput("verify-deleted-shard", spoiled_shard(Path.unlink, "--json", "--verify"), "shard-000000.tar"),
    BadInput("sheet-deleted-shard", spoiled_shard(Path.unlink, *SHEET), "shard-000000.tar", leftover=sheet_left),
    BadInput("verify-shard-replaced", spoiled_shard(lambda p: shutil.copyfile(p.with_name("shard-000001.tar"), p), "--json", "--verify"), "shard-000000.tar"),
    BadInput("verify-sample-count", manifest_edit(lambda m: m["splits"]["test"]["shards"][1].update(samples=5) or m["splits"]["test"].update(samples=6), "--verify"), "shard-000001.tar"),
    BadInput("sample-num-frames-string", crafted_sample(lambda meta: meta.update(num_frames="many")), "num_frames", leftover=sheet_left),
    BadInput("sample-captions-null", crafted_sample(lambda meta: meta.update(captions=None)), "captions", leftover=sheet_left),
    BadInput("sample-video-id-number", crafted_sample(lambda meta: meta.update(video_id=12)), "video_id", leftover=sheet_left),
    BadInput("sample-json-a-list", crafted_sample(lambda meta: [meta]), "000000000", leftover=sheet_left),
    BadInput("inspect-split-unknown", inspect("--json", "--split", "nope", "--verify"), "nope"),
    BadInput("inspect-samples-zero", inspect(*SHEET, "--samples", "0"), "--samples", leftover=sheet_left),
    BadInput("sheet-is-a-folder", inspect("--sheet", "{folder}"), "--sheet"),
    BadInput("sheet-inside-a-file", lambda d: inspect("--sheet", f"{a_file(d)}/sheet.png")(d), lambda d: str(d / "taken")),
]  # fmt: skip


# ---- a rebuild over what an earlier build left ---------------------------------------------------------------


def rebuild_over(spoil: Callable[[Path], None], splits: str) -> Callable[[Path], list]:
    """A build of ``splits`` into a copy of the built dataset, spoiled by ``spoil(dataset)``, with its options."""

    def argv(folder: Path) -> list:
        ds = dataset(folder)
        spoil(ds)
        args = build_argv("lsmdc", folder, None, "--splits", splits)
        args[args.index("--out") + 1] = str(ds)
        return args

    return argv


RESUME_CASES = [
    BadInput("kept-split-corrupt", rebuild_over(lambda ds: flip(ds / "test/shard-000001.tar"), "val"), "test/shard-000001.tar"),
    BadInput("kept-split-truncated", rebuild_over(lambda ds: truncate(ds / "test/shard-000000.tar"), "val"), "test/shard-000000.tar"),
]  # fmt: skip


CASES = ANNOTATION_CASES + BUILD_CASES + MANIFEST_CASES + INSPECT_CASES + RESUME_CASES


@pytest.mark.parametrize("case", ANNOTATION_CASES, ids=str)
def test_annotation_files(case, tmp_path, capsys):
    check(case, tmp_path, capsys)


@pytest.mark.parametrize("case", BUILD_CASES, ids=str)
def test_build_options_and_folders(case, tmp_path, capsys):
    check(case, tmp_path, capsys)


@pytest.mark.parametrize("case", MANIFEST_CASES, ids=str)
def test_manifests(case, tmp_path, capsys):
    check(case, tmp_path, capsys)


@pytest.mark.parametrize("case", INSPECT_CASES, ids=str)
def test_inspect(case, tmp_path, capsys):
    check(case, tmp_path, capsys)


@pytest.mark.parametrize("case", RESUME_CASES, ids=str)
def test_rebuild_over_spoiled_dataset(case, tmp_path, capsys):
    check(case, tmp_path, capsys)


def test_corpus_size():
    assert len({c.id for c in CASES}) == len(CASES) >= 60


# ---- what must still work: the valid inputs and a rebuild over a shard corrupted since ----------------------


def test_valid_inputs_pass(tmp_path, capsys):
    """The inputs the cases spoil are valid: the build and inspect --verify --sheet exit 0."""
    code, _, err = run_cli(build_argv("lsmdc", tmp_path, None, "--splits", "test"), capsys)
    assert code == 0, err
    code, _, err = run_cli(
        ["data", "inspect", str(tmp_path / "out"), "--verify", "--sheet", str(tmp_path / "s.png")], capsys
    )
    assert code == 0, err
    assert (tmp_path / "s.png").is_file()


def test_rebuild_replaces_a_shard_corrupted_since(tmp_path, capsys):
    """A resumed build reads every shard it keeps: one whose bytes changed since is rebuilt, and the
    committed manifest's sha256 is the file's."""
    ds = dataset(tmp_path)
    flip(ds / "test/shard-000000.tar")
    (ds / "test/shard-000001.json").write_text('{"plan_hash": ')  # a sidecar cut short: its shard is rebuilt
    args = build_argv("lsmdc", tmp_path, None, "--splits", "test")
    args[args.index("--out") + 1] = str(ds)
    code, out, err = run_cli(args, capsys)
    assert code == 0, err
    assert "wrote test/shard-000000" in out and "wrote test/shard-000001" in out
    code, out, err = run_cli(args, capsys)  # and now both are kept
    assert code == 0 and "resumed test/shard-000000" in out and "resumed test/shard-000001" in out, err
    code, _, err = run_cli(["data", "inspect", str(ds), "--json", "--verify"], capsys)
    assert code == 0, err


def test_links_out_of_the_videos_folder_are_read_when_allowed(tmp_path, capsys):
    folder = tmp_path / "case"
    folder.mkdir()
    code, _, err = run_cli([*linked_videos(folder), "--allow-links"], capsys)
    assert code == 0, err
    assert (folder / "out" / MANIFEST).is_file()
