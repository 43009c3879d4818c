"""Where MLflow runs go: `MLFLOW_TRACKING_URI`, else a local SQLite store under vtrlab's home directory."""

from __future__ import annotations

import os
from urllib.parse import urlparse

from vtrlab.errors import ConfigError
from vtrlab.paths import vtrlab_home


def tracking_uri() -> str:
    """The tracking URI in force: MLFLOW_TRACKING_URI, else sqlite:///$VTRLAB_HOME/mlflow.db."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    home = vtrlab_home()
    home.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{home / 'mlflow.db'}"


def default_artifact_root() -> str | None:
    """Artifact root for new experiments on the embedded store (None: the tracking server decides)."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return None
    return (vtrlab_home() / "mlartifacts").as_uri()


def check_tracking_server(uri: str, timeout: float = 5.0) -> None:
    """Fail fast, naming the address, when an http(s) tracking server does not answer /health."""
    parsed = urlparse(uri)
    if parsed.scheme not in ("http", "https"):
        return
    import requests

    try:
        response = requests.get(uri.rstrip("/") + "/health", timeout=timeout)
        response.raise_for_status()
    except requests.RequestException as err:
        raise ConfigError(
            f"MLflow tracking server {uri} is not reachable ({type(err).__name__}); start it or unset "
            "MLFLOW_TRACKING_URI to use the local store"
        ) from None
