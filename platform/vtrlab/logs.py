"""Keep open_clip's INFO chatter (it logs on the root logger) out of training logs."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def quiet_root_logger(level: int = logging.WARNING) -> Iterator[None]:
    """Raise the root logger's level for the duration (open_clip logs model creation at INFO and warns
    about random initialisation, which vtrlab reports itself)."""
    root = logging.getLogger()
    previous = root.level
    root.setLevel(max(level, previous))
    try:
        yield
    finally:
        root.setLevel(previous)
