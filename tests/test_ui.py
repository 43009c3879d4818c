"""The MLflow UI as the comparison surface: `vtrlab ui` serves the store and prints each experiment's page, which
headless Chromium (Debian's, driven by Playwright) opens on the training runs with method, benchmark, T2V/V2T
R@1 and trainable share as columns, and the chart view comparing methods across two sweeps; screenshots kept."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from conftest import WORKFLOW_SPEC
from servers import free_port, wait_for_http

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
SCREENSHOTS = Path(os.environ.get("VTRLAB_TEST_SCREENSHOTS", REPO / ".pytest_cache" / "screenshots"))
# Chromium flags for a closed network, as root, without a screen (no first-run, no background fetches)
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]  # fmt: skip


def chromium() -> str:
    path = os.environ.get("VTRLAB_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).is_file():
        pytest.fail(f"no Chromium at {path}: `make test` installs Debian's (apt-get install chromium)")
    return path


@pytest.fixture
def ui_server(workflow):
    """`vtrlab ui` on the workflow's store, as a user starts it; stopped afterwards."""
    port = free_port()
    command = [sys.executable, "-m", "vtrlab.cli", "ui", "--port", str(port)]
    log = open(workflow["home"] / f"ui-{port}.log", "w+b")  # noqa: SIM115
    process = subprocess.Popen(
        command, env=workflow["env"], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_for_http(base + "/health", process, 90, "vtrlab ui")
        except RuntimeError as err:
            log.seek(0)
            pytest.fail(f"{err}: {log.read().decode()[-2000:]}")
        yield {"base": base, "log": log}
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
        log.close()


@pytest.fixture(scope="module")
def second_sweep(workflow) -> str:
    """A second, smaller sweep into the same store (nothing registered): the chart view compares across sweeps."""
    import yaml

    from servers import run_vtrlab

    spec = {
        **WORKFLOW_SPEC,
        "name": "workflow-again",
        "weights": workflow["weights"],
        "data": {"synthetic": workflow["data"]},
        "train": {**WORKFLOW_SPEC["train"], "epochs": 1, "epoch_batches": 2},
        "methods": {"zero-shot": {}, "bottleneck": WORKFLOW_SPEC["methods"]["bottleneck"]},
        "budget": {**WORKFLOW_SPEC["budget"], "trials": 1, "grace_period": 1},
        "register_best": False,
    }
    path = workflow["home"] / "workflow-again.yaml"
    path.write_text(yaml.safe_dump(spec))
    result = run_vtrlab(["sweep", str(path)], workflow["env"])
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return "sweep-workflow-again"


def printed_links(ui_server) -> dict[str, str]:
    """{experiment name (or the charts line): URL} as `vtrlab ui` printed them."""
    ui_server["log"].seek(0)
    links = {}
    for line in ui_server["log"].read().decode().splitlines():
        name, _, url = line.strip().rpartition(": ")
        if url.startswith("http://"):
            links[name] = url
    return links


def browse(url: str, ready: list[str], screenshot: str) -> tuple[str, list[str | None]]:
    """Open `url` in headless Chromium until the page's text holds every string of `ready` (60 s at most), keep
    a screenshot (also when it times out); (page text, the column ids of the runs table's headers)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1800, "height": 900})
            page.goto(url)
            try:
                page.wait_for_function(
                    "wanted => wanted.every(text => document.body.innerText.includes(text))", arg=ready, timeout=60_000
                )
            except PlaywrightTimeout:
                page.screenshot(path=str(SCREENSHOTS / screenshot))
                missing = [text for text in ready if text not in page.inner_text("body")]
                pytest.fail(f"{url}: after 60 s the page lacks {missing} (screenshot {SCREENSHOTS / screenshot})")
            # (no "Close" clicks: on a shared view the first such button leaves it for the default view)
            page.wait_for_timeout(1000)  # the charts draw after the runs arrive
            page.screenshot(path=str(SCREENSHOTS / screenshot))
            headers = page.locator("[role=columnheader]")
            columns = [headers.nth(i).get_attribute("col-id") for i in range(headers.count())]
            return page.inner_text("body"), columns
        finally:
            browser.close()


def test_the_experiment_opens_on_its_training_runs_with_the_comparison_columns(workflow, ui_server):
    client = MlflowClient(workflow["tracking_uri"])
    experiment = client.get_experiment_by_name("sweep-workflow")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"  # not the GenAI overview
    trials = client.search_runs([experiment.experiment_id], "tags.`vtrlab.kind` = 'trial'")
    assert len(trials) == 4
    link = printed_links(ui_server)["sweep-workflow"]  # `vtrlab ui` prints each experiment's page
    assert link.startswith(f"{ui_server['base']}/#/experiments/{experiment.experiment_id}/runs")
    text, columns = browse(link, [f"{len(trials)} matching runs", "Training runs"], "mlflow-training-runs.png")
    assert "Training runs" in text
    wanted = ["tags.`method`", "tags.`benchmark`", *(f"metrics.`{m}`" for m in ("t2v_R1", "v2t_R1", "trainable_pct"))]
    assert set(wanted) <= set(columns), columns
    for run in trials:  # flat (the sweep's parent run filtered out: 4 matching runs), with their values
        assert run.info.run_name in text, run.info.run_name
        assert f"{run.data.metrics['t2v_R1']:g}"[:5] in text, run.data.metrics["t2v_R1"]
        assert f"{run.data.metrics['trainable_pct']:g}"[:4] in text, run.data.metrics["trainable_pct"]
    assert (SCREENSHOTS / "mlflow-training-runs.png").stat().st_size > 10_000


def test_the_chart_view_compares_methods_across_two_sweeps(workflow, second_sweep, ui_server):
    client = MlflowClient(workflow["tracking_uri"])
    names = ("sweep-workflow", second_sweep)
    experiments = [client.get_experiment_by_name(name) for name in names]
    runs = client.search_runs([e.experiment_id for e in experiments], "tags.`method` LIKE '%'")
    assert len(runs) == 4 + 2
    (link,) = [url for name, url in printed_links(ui_server).items() if name.startswith("charts:")]
    assert "compare-experiments" in link and "compareRunsMode=CHART" in link
    shown = json.loads(urllib.parse.parse_qs(urllib.parse.urlsplit(link.replace("#/", "")).query)["experiments"][0])
    assert {e.experiment_id for e in experiments} <= set(shown)  # every sweep of the store (tests add empty ones)
    methods = ("zero-shot", "bottleneck", "mv-adapter")
    charts = [f"({metric})" for metric in ("t2v_R1", "v2t_R1", "trainable_pct")]  # their legends: "method (metric)"
    groups = [f"Group: {method}" for method in methods]  # both sweeps' runs, grouped by their method
    text, _ = browse(link, ["Group by: method", *groups, *charts], "mlflow-charts-two-sweeps.png")
    assert f"Displaying Runs from {len(shown)} Experiments" in text and f"{len(runs)} matching runs" in text
    assert "Model metrics\n(3)" in text  # only the three comparison charts (a line per method in each)
    for run in runs:
        assert run.info.run_name in text, run.info.run_name
    assert (SCREENSHOTS / "mlflow-charts-two-sweeps.png").stat().st_size > 10_000
