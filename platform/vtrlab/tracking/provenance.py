"""What a parent run records about where it ran: the git commit and the versions of the main packages."""

from __future__ import annotations

import subprocess

PACKAGES = ("torch", "open_clip_torch", "ray", "mlflow", "optuna", "webdataset")


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
