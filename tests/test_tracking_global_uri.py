"""The tracker lends its store to MLflow's global URI only for the calls that need it: afterwards the
process's MLflow URI and MLFLOW_TRACKING_URI are exactly what they were (a regression: restoring through
mlflow.set_tracking_uri pinned MLflow's default ./mlflow.db in the environment, and the quickstart's
comparison then read an empty store)."""

from __future__ import annotations

import os

import pytest
from mlflow.tracking._tracking_service import utils

from vtrlab.tracking.client import Tracker
from vtrlab.tracking.store import tracking_uri


@pytest.mark.parametrize("user_env", [None, "sqlite:///elsewhere.db"])
def test_global_uri_restored_exactly(tmp_path, monkeypatch, user_env):
    monkeypatch.setenv("VTRLAB_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(utils, "_tracking_uri", None)
    if user_env is None:
        monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    else:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", user_env)
    before = tracking_uri()
    tracker = Tracker(f"sqlite:///{tmp_path / 'runs.db'}")
    with tracker._as_global_uri():
        assert utils.get_tracking_uri() == tracker.uri
    assert os.environ.get("MLFLOW_TRACKING_URI") == user_env
    assert utils._tracking_uri is None
    assert tracking_uri() == before
