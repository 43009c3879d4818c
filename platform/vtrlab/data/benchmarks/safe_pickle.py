"""Read a pickle of plain containers without running code from it.

An annotation pickle (MSVD's ``raw-captions.pkl``) needs no globals: dicts, lists, tuples, strings and
numbers are built by pickle opcodes in every protocol. Every global (the only way a pickle reaches a
callable: ``__reduce__``, ``INST``/``OBJ``, extension codes) and every persistent id is refused before
anything is called, with a :class:`~vtrlab.errors.DataError` naming the file and the global.
"""

from __future__ import annotations

import _compat_pickle
import io
import pickle
from pathlib import Path
from typing import Any

from vtrlab.errors import DataError

ALLOWED = "dict, list, tuple, str, int, float, bool and None"


class _PlainUnpickler(pickle.Unpickler):
    """An unpickler whose ``find_class`` and ``persistent_load`` refuse everything."""

    def __init__(self, file: io.BufferedIOBase, source: str):
        # Python 2 pickles store text as byte strings: decode them as UTF-8 (caption text), not ASCII
        super().__init__(file, encoding="utf-8")
        self._source = source

    def find_class(self, module: str, name: str) -> Any:
        raise DataError(
            f"{self._source}: refused: the pickle names the global {_python3_name(module, name)} "
            f"(only {ALLOWED} are read; no code runs from annotation files)"
        )

    def persistent_load(self, pid: Any) -> Any:
        raise DataError(f"{self._source}: refused: the pickle has a persistent id (only {ALLOWED} are read)")


def _python3_name(module: str, name: str) -> str:
    """``module.name`` as Python 3 calls it (protocols 0-2 write Python 2 names: ``__builtin__.exec``)."""
    written = f"{module}.{name}"
    if (module, name) in _compat_pickle.NAME_MAPPING:
        module, name = _compat_pickle.NAME_MAPPING[(module, name)]
    elif module in _compat_pickle.IMPORT_MAPPING:
        module = _compat_pickle.IMPORT_MAPPING[module]
    resolved = f"{module}.{name}"
    return resolved if resolved == written else f"{resolved} (written {written})"


def load_plain_pickle(path: str | Path) -> Any:
    """The object in the pickle at ``path``, built only from plain containers; anything else is a DataError."""
    p = Path(path)
    try:
        with open(p, "rb") as f:
            return _PlainUnpickler(f, str(p)).load()
    except DataError:
        raise
    except Exception as exc:  # truncated or corrupt: UnpicklingError, EOFError, ValueError, UnicodeDecodeError...
        raise DataError(f"{p}: cannot read the pickle: {type(exc).__name__}: {exc}") from None
