"""vtrlab: parameter-efficient video-text retrieval on a frozen open_clip CLIP, orchestrated with Ray and MLflow.

`vtrlab.load("MODEL@ALIAS")` returns a registered adapter ready to use (see `vtrlab.hub`); it is imported on
first use, so `import vtrlab` stays light (no torch, no MLflow).
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "load"]


def __getattr__(name: str) -> Any:
    if name == "load":
        from vtrlab.hub import load

        return load
    raise AttributeError(f"module 'vtrlab' has no attribute {name!r}")
