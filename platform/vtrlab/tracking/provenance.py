"""Provenance, assembled in one place for every top-level run (sweep, regression, training): the spec file
and its fingerprint, the git commit, the data versions and the versions of the packages that change results;
and the flattening of nested values into MLflow params."""

from __future__ import annotations

import functools
import subprocess
from collections.abc import Mapping
from typing import Any

PACKAGES = ("torch", "open_clip_torch", "ray", "mlflow", "optuna", "webdataset")
MAX_PARAM_LENGTH = 6000


@functools.lru_cache(maxsize=1)
def git_commit() -> str:
    """`git rev-parse HEAD` in the working directory, or "unknown" outside a checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False)
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def package_versions() -> dict[str, str]:
    """{package: installed version} of the packages whose versions change results."""
    from importlib.metadata import version

    return {name: version(name) for name in PACKAGES}


def flatten_params(values: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested dicts become dotted keys (knob.width); values are strings, truncated to MLflow's limit."""
    flat: dict[str, str] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_params(value, f"{name}."))
        else:
            flat[name] = str(value)[:MAX_PARAM_LENGTH]
    return flat


def provenance_params(
    source: str, fingerprint: str, manifests: Mapping[str, Mapping[str, Any]], **extra: Any
) -> dict[str, str]:
    """The params of a top-level run: spec file and fingerprint, git commit, each benchmark's data version,
    package versions, plus `extra`."""
    return flatten_params(
        {
            "spec_file": source,
            "spec_fingerprint": fingerprint,
            "git_commit": git_commit(),
            **{f"data_version.{b}": manifest.get("version", "?") for b, manifest in manifests.items()},
            **{f"version.{k}": v for k, v in package_versions().items()},
            **extra,
        }
    )
