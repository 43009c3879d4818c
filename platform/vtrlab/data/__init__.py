"""The data layer: benchmark cards and parsers, video decoding, WebDataset shards in object storage,
streaming train/eval loaders and the synthetic temporal benchmark.

Imports nothing of Ray (the build takes a task runner, :mod:`vtrlab.tasks`), of the model package (the
loaders take a tokenizer, :mod:`vtrlab.text`), MLflow or the CLI. Public API::

    list_benchmarks() -> [name];  register_benchmark(name, summary)  # the benchmark registry
    load_card(name_or_path) -> DatasetCard
    parse_annotations(card, annotations_dir, splits=None, *, strict_ids=False) -> {split: [VideoItem]}
    build(benchmark, annotations, videos, out, splits=None, *, executor="ray", strict_ids=False, ...) -> manifest
    synth(out, size="small", seed=0) -> manifest
    read_manifest(url) -> dict;  summary(url) -> dict;  write_contact_sheet(url, path)
    summary.verify_shards(url, split=None) -> shards checked (sha256 and sample count against the manifest)
    make_train_loader(url, split, *, batch_size, num_frames, max_words, num_workers=0, rank=0,
                      world_size=1, seed=0, epoch_batches=None, ...)
    make_eval_loader(url, split, *, batch_size, num_frames, max_words, rank=0, world_size=1, ...)
    decode_frames(batch, device)   # for loaders made with decode="device"
"""

from typing import Any

from vtrlab.data.benchmarks import get_benchmark, list_benchmarks, register_benchmark
from vtrlab.data.card import DatasetCard, load_card
from vtrlab.data.parsers import VideoItem, parse_annotations
from vtrlab.data.shards import read_manifest

__all__ = [
    "CARD_NAMES",
    "DatasetCard",
    "VideoItem",
    "build",
    "decode_frames",
    "frame_indices",
    "get_benchmark",
    "list_benchmarks",
    "load_card",
    "make_eval_loader",
    "make_train_loader",
    "parse_annotations",
    "read_manifest",
    "register_benchmark",
    "summary",
    "synth",
    "write_contact_sheet",
]


def build(*args, **kwargs):
    """See :func:`vtrlab.data.build.build`."""
    from vtrlab.data.build import build as _build

    return _build(*args, **kwargs)


def synth(*args, **kwargs):
    """See :func:`vtrlab.data.synth.synth`."""
    from vtrlab.data.synth import synth as _synth

    return _synth(*args, **kwargs)


def summary(url: str) -> dict:
    """See :func:`vtrlab.data.summary.summary`."""
    from vtrlab.data.summary import summary as _summary

    return _summary(url)


def write_contact_sheet(url: str, path: str, **kw) -> str:
    """See :func:`vtrlab.data.summary.write_contact_sheet`."""
    from vtrlab.data.summary import write_contact_sheet as _w

    return _w(url, path, **kw)


# the loaders import torch (about 1.3 s): on first use, so the CLI's other commands start without it
_LOADER_NAMES = ("decode_frames", "frame_indices", "make_eval_loader", "make_train_loader")


def __getattr__(attr: str) -> Any:
    if attr == "CARD_NAMES":  # the registered benchmarks (discovered on first use)
        return tuple(list_benchmarks())
    if attr in _LOADER_NAMES:
        from vtrlab.data import loader

        return getattr(loader, attr)
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")
