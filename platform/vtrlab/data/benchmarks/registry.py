"""The benchmark registry: each benchmark is one module of this package, its parser registered by name
with a decorator, its card the YAML file next to the module (``msrvtt.py`` + ``msrvtt.yaml``).

Like the method registry (:mod:`vtrlab.model.methods.registry`), there is no hand-kept list: the package's
modules are discovered with :mod:`pkgutil` and imported on first use. Adding a benchmark is adding a
module with a ``@register_benchmark("name", ...)`` parser and its card.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from vtrlab.errors import ConfigError

if TYPE_CHECKING:  # the card imports this module to resolve names
    from vtrlab.data.benchmarks.common import Parsed
    from vtrlab.data.card import DatasetCard

ParseFn = Callable[["DatasetCard", Path, list[str], bool], "Parsed"]
PACKAGE = "vtrlab.data.benchmarks"


@dataclass(frozen=True)
class BenchmarkEntry:
    """A registered benchmark: its name, its parser ``parse(card, ann_dir, splits, strict_ids)``, its card
    file and a one-line summary."""

    name: str
    parse: ParseFn
    card: Path
    summary: str


_BENCHMARKS: dict[str, BenchmarkEntry] = {}
_discovered = False


def register_benchmark(name: str, summary: str, card: str | None = None) -> Callable[[ParseFn], ParseFn]:
    """Decorator registering ``parse`` as benchmark ``name``; its card is ``<name>.yaml`` next to the
    parser's module (or ``card``, a file name in that folder)."""

    def decorator(parse: ParseFn) -> ParseFn:
        if name in _BENCHMARKS:
            raise RuntimeError(f"benchmark {name!r} is registered twice")
        module_file = getattr(sys.modules[parse.__module__], "__file__", None)
        if module_file is None:
            raise RuntimeError(f"benchmark {name!r}: cannot locate the module of its parser")
        path = Path(module_file).with_name(card or f"{name}.yaml")
        if not path.is_file():
            raise RuntimeError(f"benchmark {name!r}: its card {path} does not exist")
        _BENCHMARKS[name] = BenchmarkEntry(name=name, parse=parse, card=path, summary=summary)
        return parse

    return decorator


def discover() -> None:
    """Import every module of this package once (each benchmark module registers itself)."""
    global _discovered
    if _discovered:
        return
    package = importlib.import_module(PACKAGE)
    for info in pkgutil.iter_modules(package.__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{PACKAGE}.{info.name}")
    _discovered = True


def list_benchmarks() -> list[str]:
    """Names of every registered benchmark (sorted by module name)."""
    discover()
    return list(_BENCHMARKS)


def get_benchmark(name: str) -> BenchmarkEntry:
    """The registry entry of ``name``; an unknown name is a ConfigError listing the registered ones."""
    discover()
    try:
        return _BENCHMARKS[name]
    except KeyError:
        raise ConfigError(f"unknown benchmark {name!r}; registered: {', '.join(_BENCHMARKS)}") from None
