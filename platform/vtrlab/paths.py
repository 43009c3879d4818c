"""Where the embedded defaults keep things: vtrlab's home directory and a benchmark's default shards."""

from __future__ import annotations

import os
from pathlib import Path


def vtrlab_home() -> Path:
    """`VTRLAB_HOME`, else ~/.vtrlab: the embedded defaults' MLflow store, data, sweeps and Ray results."""
    return Path(os.environ.get("VTRLAB_HOME", Path.home() / ".vtrlab")).expanduser()


def default_data_url(benchmark: str) -> str:
    """Where a benchmark's shards are by default: the card's `shards`, else $VTRLAB_HOME/data/<name>."""
    from vtrlab.data.card import load_card

    card = load_card(benchmark)
    return card.shards or str(vtrlab_home() / "data" / card.name)
