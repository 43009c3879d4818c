"""From the model registry to the user's code: resolve a model reference, pull a verified adapter, load it,
search a benchmark split with it (`vtrlab pull`, `vtrlab search`, `vtrlab.load`).

    resolve_version(tracker, "MODEL@ALIAS" | "MODEL/VERSION" | "MODEL") -> VersionRecord
    pull(reference, out_dir, weights=None, tracking_uri=None) -> PulledAdapter
    load(reference, weights=None, tracking_uri=None, device="cpu") -> VideoTextDualEncoder

These modules import torch and MLflow only when called, so importing the package stays cheap. Note that
`vtrlab.hub.load` is the function; its module is `sys.modules["vtrlab.hub.load"]`.
"""

from vtrlab.hub.load import load, load_pulled
from vtrlab.hub.pull import PulledAdapter, pull
from vtrlab.hub.reference import ModelReference, parse_reference, resolve_version

__all__ = ["ModelReference", "PulledAdapter", "load", "load_pulled", "parse_reference", "pull", "resolve_version"]
