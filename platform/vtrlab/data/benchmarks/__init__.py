"""The benchmarks: one module per benchmark (its annotation parser, registered by name) with its card
next to it (``msrvtt.py`` + ``msrvtt.yaml``); modules are discovered, not listed (see :mod:`.registry`).

Shared pieces: :mod:`.common` (VideoItem, Parsed, annotation readers), :mod:`.safe_pickle` (pickles of
plain containers, no code run), :mod:`.video_index` (finding an item's video file).
"""

from vtrlab.data.benchmarks.registry import BenchmarkEntry, get_benchmark, list_benchmarks, register_benchmark

__all__ = ["BenchmarkEntry", "get_benchmark", "list_benchmarks", "register_benchmark"]
