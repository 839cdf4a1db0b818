"""Review in a real browser: the MLflow UI shows the run, its metrics and `champion`; the
Prefect UI shows the deployment and its schedule. Screenshots land in test-artifacts/."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlpipe.servers import mlflow_command, prefect_command, wait_healthy
from tests.integration.stack import free_port, start, stop, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed (the CI script installs it: make browser)")
        pytest.skip("chromium is not installed; `make browser` installs it")
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        chrome = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield chrome
        chrome.close()


@pytest.mark.usefixtures("prefect_harness")
def test_mlflow_ui_shows_run_metrics_and_champion(browser, isolated_workdir: Path):
    from flows.training import training
    from mlpipe.config import build_config

    config = {
        "dataset": {"source": "penguins"},
        "train": {"max_epochs": 15, "hidden_layers": [16], "learning_rate": 0.01},
    }
    result = training(build_config(config))
    port = free_port()
    cmd, env = mlflow_command("127.0.0.1", port, f"sqlite:///{isolated_workdir / 'mlflow.db'}",
                              str(isolated_workdir / "mlruns"), None)  # fmt: skip
    server = start(cmd, env, isolated_workdir / "mlflow.log")
    try:
        url = f"http://127.0.0.1:{port}"
        assert wait_healthy(f"{url}/health", 120), (isolated_workdir / "mlflow.log").read_text()
        page = browser.new_page(viewport={"width": 1440, "height": 1000})  # type: ignore[attr-defined]
        page.goto(f"{url}/#/experiments")
        # MLflow 3.17 opens in its GenAI view; a reviewer switches to "Model training".
        page.get_by_text("Model training", exact=True).first.click()
        page.get_by_text("mlpipe", exact=True).first.click()  # opens on the runs list
        run_name = page.get_by_text(re.compile(r"penguins-mlp-\d{8}")).first
        run_name.wait_for(timeout=60_000)
        page.screenshot(path=str(SHOTS / "mlflow-experiment.png"), full_page=True)
        run_name.click()
        # Metrics carry grouped names (test/..., val/...): MLflow shows one section per group.
        page.get_by_text("test/accuracy").first.wait_for(timeout=60_000)
        page.screenshot(path=str(SHOTS / "mlflow-run.png"), full_page=True)
        assert result.run_id in page.url, "the run page of this training run"
        value = f"{result.metrics['test_accuracy']:.4g}"[:4]
        assert value in page.inner_text("body"), f"test_accuracy {value} is shown"

        # The Model metrics tab: one section per metric group.
        page.get_by_role("tab", name=re.compile("Model metrics")).first.click()
        page.get_by_text("Add chart").first.wait_for(timeout=60_000)
        body = page.inner_text("body")
        for group in ("test", "val", "train", "baseline", "rows", "clean"):
            # A section header: the group's name, then its chart count.
            assert re.search(rf"^{group}\n\(\d+\)\n", body, re.M), f"no '{group}' section"
        page.screenshot(path=str(SHOTS / "mlflow-run-metrics.png"), full_page=True)

        page.goto(f"{url}/#/models/mlpipe-penguins")
        page.get_by_text(re.compile("champion")).first.wait_for(timeout=60_000)
        page.screenshot(path=str(SHOTS / "mlflow-model-champion.png"), full_page=True)
        # The version page renders its description: the decision and a link to the card,
        # which opens rendered (HTML in the artifact view), not as Markdown source.
        page.goto(f"{url}/#/models/mlpipe-penguins/versions/1")
        page.get_by_text("promoted to champion").first.wait_for(timeout=60_000)
        link = page.get_by_role("link", name="Model card").first
        href = str(link.get_attribute("href"))
        assert href.endswith("/artifactPath/model_card/model_card.html"), href
        page.goto(f"{url}/{href.lstrip('/')}")  # the UI opens description links in a new tab
        # Rendered (MLflow shows HTML artifacts in a sandboxed frame): the card's title is a
        # heading, not "# Model card" source text.
        heading = page.frame_locator("iframe").first.locator("h1").first
        assert heading.inner_text(timeout=60_000) == "Model card: mlpipe-penguins v1"
        page.screenshot(path=str(SHOTS / "mlflow-model-card.png"), full_page=True)
        page.close()
    finally:
        stop(server)


def test_prefect_ui_shows_deployment_and_schedule(browser, tmp_path: Path):
    port = free_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    base["PREFECT_HOME"] = str(tmp_path / "prefect-home")
    cmd, env = prefect_command("127.0.0.1", port, None)
    server = start(cmd, {**base, **{k: v for k, v in env.items() if k.startswith("PREFECT_")}},
                   tmp_path / "prefect.log")  # fmt: skip
    deploy = None
    try:
        api = f"http://127.0.0.1:{port}/api"
        assert wait_healthy(f"{api}/health", 180), (tmp_path / "prefect.log").read_text()[-3000:]
        # Runs it starts track into this test's own store, with their run folders here.
        mlflow_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
        deploy = start([sys.executable, "-m", "mlpipe", "deploy", "--dataset", "penguins",
                        "--set", "schedule.cron=0 2 * * *"],
                       {**base, "PREFECT_API_URL": api, "MLFLOW_TRACKING_URI": mlflow_uri},
                       tmp_path / "deploy.log", cwd=tmp_path)  # fmt: skip
        import json
        import urllib.request

        def deployed() -> bool:
            req = urllib.request.Request(f"{api}/deployments/filter", data=b"{}", method="POST",
                                         headers={"Content-Type": "application/json"})  # fmt: skip
            with urllib.request.urlopen(req, timeout=10) as resp:
                return any(d["name"] == "mlpipe-training" for d in json.loads(resp.read()))

        assert wait_for(deployed, 120), (tmp_path / "deploy.log").read_text()[-3000:]
        page = browser.new_page(viewport={"width": 1440, "height": 1000})  # type: ignore[attr-defined]
        page.goto(f"http://127.0.0.1:{port}/deployments")
        row = page.get_by_role("row").filter(has_text="mlpipe-training")
        row.first.wait_for(timeout=60_000)
        # The list shows each deployment's schedule, rendered from the cron "0 2 * * *".
        row.get_by_text(re.compile(r"At 02:00 AM every day")).first.wait_for(timeout=60_000)
        page.screenshot(path=str(SHOTS / "prefect-deployments.png"), full_page=True)

        # A run started from the deployment: mlpipe's stage lines in its Logs tab, and the
        # promotion decision among its artifacts.
        fast = ["--set", "train.max_epochs=5", "--set", "train.hidden_layers=[16]"]
        done = subprocess.run(
            [sys.executable, "-m", "mlpipe", "retrain", "--dataset", "penguins", *fast, "--wait"],
            env={**base, "PREFECT_API_URL": api, "MLFLOW_TRACKING_URI": mlflow_uri},
            cwd=tmp_path, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr[-3000:]
        run_id = re.search(r"/runs/flow-run/([0-9a-f-]{36})", done.stdout).group(1)  # type: ignore[union-attr]
        page.goto(f"http://127.0.0.1:{port}/runs/flow-run/{run_id}")
        page.get_by_text(re.compile(r"loaded penguins: 344 rows")).first.wait_for(timeout=60_000)
        page.get_by_text(re.compile(r"mlpipe-penguins v1: ")).first.wait_for(timeout=60_000)
        page.screenshot(path=str(SHOTS / "prefect-run-logs.png"), full_page=True)
        page.get_by_text("Artifacts", exact=True).first.click()
        page.get_by_text("mlpipe promotion decision").first.wait_for(timeout=60_000)
        page.screenshot(path=str(SHOTS / "prefect-run-artifacts.png"), full_page=True)
        page.close()
    finally:
        if deploy is not None:
            stop(deploy)
        stop(server)
