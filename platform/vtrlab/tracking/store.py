"""Where MLflow runs go: `MLFLOW_TRACKING_URI`, else a local SQLite store under vtrlab's home directory.

A tracking server with authentication (`mlflow server --app-name basic-auth`) takes MLflow's own client
credentials: MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD, MLFLOW_TRACKING_TOKEN, or the
credentials file ~/.mlflow/credentials. `check_tracking_server` checks them before any work starts;
`tracking_auth_errors` turns a later 401/403 into a ConfigError naming the server.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
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


CREDENTIALS_HINT = (
    "set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN), or write them to "
    "~/.mlflow/credentials"
)


def _http_status(err: BaseException) -> int | None:
    from mlflow.exceptions import MlflowException

    if isinstance(err, MlflowException):
        return err.get_http_status_code()
    response = getattr(err, "response", None)  # requests.HTTPError (artifact uploads to a proxying server)
    return getattr(response, "status_code", None)


def tracking_auth_error(err: BaseException, uri: str | None = None) -> ConfigError | None:
    """For MLflow's refusal of a request (HTTP 401: credentials missing or wrong; 403: the user lacks the
    permission), a one-line ConfigError naming the server and what to do; None for any other error."""
    status = _http_status(err)
    return _refusal(status, uri or tracking_uri()) if status in (401, 403) else None


def _refusal(status: int, uri: str) -> ConfigError:
    from mlflow.utils.credentials import read_mlflow_creds

    user = read_mlflow_creds().username
    if status == 403:
        return ConfigError(
            f"MLflow tracking server {uri} refused the request (403): user {user!r} lacks the permission; "
            "ask its admin to grant it"
        )
    if user or os.environ.get("MLFLOW_TRACKING_TOKEN"):
        what = f"the credentials of {user!r} were rejected" if user else "the token was rejected"
    else:
        what = "no credentials were sent"
    return ConfigError(f"MLflow tracking server {uri} refused the request (401): {what}; {CREDENTIALS_HINT}")


@contextlib.contextmanager
def tracking_auth_errors(uri: str | None = None) -> Iterator[None]:
    """Re-raise MLflow's 401/403 refusals inside the block as a ConfigError naming the server."""
    try:
        yield
    except Exception as err:
        refusal = tracking_auth_error(err, uri)
        if refusal is None:
            raise
        raise refusal from None


def check_tracking_server(uri: str, timeout: float = 5.0) -> None:
    """Fail fast, naming the address, when an http(s) tracking server does not answer /health or refuses this
    process's credentials (sent the way MLflow's client sends them)."""
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
    from mlflow.utils.credentials import get_default_host_creds
    from mlflow.utils.rest_utils import http_request

    try:
        response = http_request(
            get_default_host_creds(uri), "/api/2.0/mlflow/experiments/search", "POST",
            json={"max_results": 1}, max_retries=0, timeout=timeout, raise_on_status=False,
        )  # fmt: skip
    except Exception as err:
        raise ConfigError(f"MLflow tracking server {uri} did not answer a search ({type(err).__name__})") from None
    if response.status_code in (401, 403):
        raise _refusal(response.status_code, uri)
    if response.status_code >= 500:
        raise ConfigError(
            f"MLflow tracking server {uri} fails requests (HTTP {response.status_code} to a search): its database "
            "may be unreachable; see the server's log"
        )
