"""Adapter methods, one file each; importing this package registers all of them."""

from vtrlab.model.methods import baselines, bottleneck, lora, mv_adapter, rap  # noqa: F401  (registration)
from vtrlab.model.methods.registry import (
    Knobs,
    MethodEntry,
    benchmark_knobs,
    describe_knob,
    get_method,
    knob_defaults,
    list_methods,
    parse_knobs,
    register_method,
)

__all__ = [
    "Knobs",
    "MethodEntry",
    "benchmark_knobs",
    "describe_knob",
    "get_method",
    "knob_defaults",
    "list_methods",
    "parse_knobs",
    "register_method",
]
