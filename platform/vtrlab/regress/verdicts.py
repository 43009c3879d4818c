"""The verdicts of a regression entry (a module of its own so the CLI imports them without MLflow)."""

from __future__ import annotations

PASS, REGRESSION, NO_BASELINE, FAILED = "pass", "regression", "no baseline", "failed"
NOT_OK = (REGRESSION, FAILED)  # what makes `vtrlab regress` exit 1
