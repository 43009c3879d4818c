"""The MLflow UI as the comparison surface: `vtrlab ui` serves the store, and headless Chromium (Debian's,
driven by Playwright) shows the sweep's trial runs with their metric column; the screenshot is kept."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

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


def test_the_experiment_page_shows_the_trial_runs_and_their_metrics(workflow, ui_server):
    from playwright.sync_api import sync_playwright

    client = MlflowClient(workflow["tracking_uri"])
    experiment = client.get_experiment_by_name("sweep-workflow")
    trials = client.search_runs([experiment.experiment_id], "tags.`vtrlab.kind` = 'trial'")
    assert len(trials) == 4
    ui_server["log"].seek(0)
    printed = ui_server["log"].read().decode()
    runs_page = f"{ui_server['base']}/#/experiments/{experiment.experiment_id}/runs"
    assert runs_page in printed  # `vtrlab ui` prints each experiment's page
    # the trial runs as a flat list (a filter un-nests child runs), best first
    query = urllib.parse.urlencode(
        {"searchFilter": "tags.`vtrlab.kind` = 'trial'", "orderByKey": "metrics.`t2v_R1`", "orderByAsc": "false"},
        quote_via=urllib.parse.quote,
    )
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1800, "height": 700})
            page.goto(f"{runs_page}?{query}")
            page.get_by_text(f"{len(trials)} matching runs").wait_for(timeout=60_000)
            page.get_by_text("Sort:").click()  # choosing a metric to sort by adds its column
            page.get_by_test_id("sort-select-t2v_R1").click()
            page.keyboard.press("Escape")
            page.locator('[role=columnheader][col-id="metrics.`t2v_R1`"]').wait_for(timeout=30_000)
            assistant = page.get_by_role("button", name="Close")  # MLflow 3's assistant panel takes a third
            if assistant.count():
                assistant.first.click()
            best = f"{max(r.data.metrics['t2v_R1'] for r in trials):g}"  # trials may tie: any such cell
            page.get_by_role("gridcell", name=best).first.wait_for()
            page.screenshot(path=str(SCREENSHOTS / "mlflow-experiment-runs.png"))
            text = page.inner_text("body")
        finally:
            browser.close()
    for run in trials:
        assert run.info.run_name in text, run.info.run_name
        assert f"{run.data.metrics['t2v_R1']:g}"[:5] in text, run.data.metrics["t2v_R1"]
    for method in ("zero-shot", "bottleneck", "mv-adapter"):
        assert f"{method}-synthetic-" in text
    assert (SCREENSHOTS / "mlflow-experiment-runs.png").stat().st_size > 10_000
