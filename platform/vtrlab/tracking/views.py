"""How the MLflow UI opens vtrlab's experiments: on the training-runs view (not MLflow 3's GenAI overview),
listing the training runs flat, best T2V R@1 first, with method, benchmark, T2V/V2T R@1 and trainable share
as visible columns.

Both are MLflow's own experiment tags, so any MLflow UI (`vtrlab ui`, or a team's tracking server) honours
them: `mlflow.experimentKind` = `custom_model_development` picks the runs view, and a shared view state
(`mlflow.sharedViewState.<key>`, what the UI's own "Share" button writes) holds the filter, order and
columns; a link with `?viewStateShareKey=<key>` opens it. The compare-experiments link opens the chart view
over several sweeps, one bar per run and metric, runs coloured and named by method.
"""

from __future__ import annotations

import json
import urllib.parse

EXPERIMENT_KIND = "mlflow.experimentKind"
TRAINING_KIND = "custom_model_development"  # MLflow UI: experiment page on the runs (training) view
VIEW_KEY = "vtrlab-training-runs"
SHARED_VIEW_TAG = f"mlflow.sharedViewState.{VIEW_KEY}"
TRAINING_RUNS = "tags.`method` LIKE '%'"  # every run that trained or evaluated a method (not sweep parents)
ORDER_BY = "metrics.`t2v_R1`"
COLUMNS = (
    "tags.`method`",
    "tags.`benchmark`",
    "metrics.`t2v_R1`",
    "metrics.`v2t_R1`",
    "metrics.`trainable_pct`",
)


def runs_view_state() -> dict:
    """The shared view state: the MLflow UI's search facets and runs-table state (its JSON keys)."""
    return {
        "searchFilter": TRAINING_RUNS,
        "orderByKey": ORDER_BY,
        "orderByAsc": False,
        "selectedColumns": list(COLUMNS),
        "runsHiddenMode": "SHOW_ALL",  # every run in the charts, not the UI's default first ten
    }


def experiment_tags() -> dict[str, str]:
    """The tags that make the MLflow UI open an experiment on vtrlab's training-runs view."""
    return {EXPERIMENT_KIND: TRAINING_KIND, SHARED_VIEW_TAG: json.dumps(runs_view_state())}


def runs_page(base: str, experiment_id: str) -> str:
    """The experiment's training-runs view in the MLflow UI at `base`."""
    return f"{base}/#/experiments/{experiment_id}/runs?viewStateShareKey={VIEW_KEY}"


def charts_page(base: str, experiment_ids: list[str]) -> str:
    """The chart view comparing the training runs of several experiments (e.g. sweeps) in the UI at `base`."""
    query = urllib.parse.urlencode(
        {
            "experiments": json.dumps(experiment_ids),
            "searchFilter": TRAINING_RUNS,
            "orderByKey": ORDER_BY,
            "orderByAsc": "false",
            "compareRunsMode": "CHART",
        },
        quote_via=urllib.parse.quote,
    )
    return f"{base}/#/compare-experiments/s?{query}"
