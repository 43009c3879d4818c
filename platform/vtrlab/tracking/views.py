"""How the MLflow UI opens vtrlab's experiments: on the training-runs view (not MLflow 3's GenAI overview),
listing the training runs flat, best T2V R@1 first, with method, benchmark, T2V/V2T R@1 and trainable share
as visible columns.

Both are MLflow's own experiment tags, so any MLflow UI (`vtrlab ui`, or a team's tracking server) honours
them: `mlflow.experimentKind` = `custom_model_development` picks the runs view, and a shared view state
(`mlflow.sharedViewState.<key>`, what the UI's own "Share" button writes) holds the filter, order and
columns; a link with `?viewStateShareKey=<key>` opens it. The compare-experiments link opens the chart view
over several sweeps with the runs grouped by method: one line per method for T2V R@1, V2T R@1 and trainable
share.
"""

from __future__ import annotations

import json
import urllib.parse

EXPERIMENT_KIND = "mlflow.experimentKind"
TRAINING_KIND = "custom_model_development"  # MLflow UI: experiment page on the runs (training) view
SHARED_VIEW_PREFIX = "mlflow.sharedViewState."  # + a key: a view state, as the UI's own Share button writes it
VIEW_KEY = "vtrlab-training-runs"  # the runs flat
METHODS_KEY = "vtrlab-methods"  # the runs grouped by method: the charts compare methods
TRAINING_RUNS = "tags.`method` LIKE '%'"  # every run that trained or evaluated a method (not sweep parents)
ORDER_BY = "metrics.`t2v_R1`"
CHARTS = "^(t2v_R1|v2t_R1|trainable_pct)$"  # the chart view's metric filter (a regular expression)
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
        "chartsSearchFilter": CHARTS,
    }


def methods_view_state() -> dict:
    """The runs view grouped by the `method` tag, each group's chart value its best run's (the charts' lines
    are then one per method, across every experiment shown)."""
    by_method = {"aggregateFunction": "max", "groupByKeys": [{"mode": "tag", "groupByData": "method"}]}
    return {**runs_view_state(), "groupBy": by_method, "useGroupedValuesInCharts": True}


def experiment_tags() -> dict[str, str]:
    """The tags that make the MLflow UI open an experiment on vtrlab's training-runs view."""
    return {
        EXPERIMENT_KIND: TRAINING_KIND,
        SHARED_VIEW_PREFIX + VIEW_KEY: json.dumps(runs_view_state()),
        SHARED_VIEW_PREFIX + METHODS_KEY: json.dumps(methods_view_state()),
    }


def runs_page(base: str, experiment_id: str) -> str:
    """The experiment's training-runs view in the MLflow UI at `base`."""
    return f"{base}/#/experiments/{experiment_id}/runs?viewStateShareKey={VIEW_KEY}"


def charts_page(base: str, experiment_ids: list[str]) -> str:
    """The chart view comparing methods over the training runs of several experiments (e.g. sweeps) in the UI at
    `base`: T2V/V2T R@1 and trainable share per epoch, one line per method (its best run)."""
    query = urllib.parse.urlencode(
        {"experiments": json.dumps(experiment_ids), "viewStateShareKey": METHODS_KEY, "compareRunsMode": "CHART"},
        quote_via=urllib.parse.quote,
    )
    return f"{base}/#/compare-experiments/s?{query}"
