"""Deployments, manual and drift-triggered retraining against real servers on PostgreSQL."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from urllib.parse import quote

import pytest

from tasks.monitor import DRIFT_TAG
from tests.helpers import make_shop_year
from tests.integration.stack import Stack, http_json, mlpipe, stop, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SHOP = ["--set", "dataset.name=shop", "--set", "dataset.target=spend",
        "--set", "dataset.ignore=[year]", "--set", "train.max_epochs=10",
        "--set", "train.hidden_layers=[16]", "--set", "train.learning_rate=0.01",
        "--set", "train.baseline=none"]  # fmt: skip


def test_deploy_retrain_schedule_and_drift_trigger(stack: Stack):
    first_year = stack.workdir / "shop_2023.csv"
    make_shop_year(3000, seed=0).to_csv(first_year, index=False)
    drifted = stack.workdir / "shop_2024.csv"
    make_shop_year(3000, seed=1, shift_price=25.0, web_share=0.75).to_csv(drifted, index=False)

    # Given `mlpipe deploy` serving with a one-minute cron and a monitoring deployment.
    deploy = subprocess.Popen(
        [sys.executable, "-m", "mlpipe", "deploy", "--data", str(first_year), *SHOP,
         "--set", "schedule.cron='* * * * *'", "--set", "schedule.cooldown_minutes=60"],
        env=stack.env, cwd=stack.workdir, stdout=(stack.workdir / "deploy.log").open("wb"),
        stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        deployments = wait_for(lambda: stack_deployments(stack) >= 3 or None, 120)
        assert deployments, (stack.workdir / "deploy.log").read_text()[-3000:]
        found = http_json(f"{stack.prefect_api}/deployments/filter", {})
        training = next(d for d in found if d["name"] == "mlpipe-training")  # type: ignore[union-attr]
        limit = training.get("concurrency_limit") or (
            training.get("global_concurrency_limit") or {}).get("limit")  # fmt: skip
        assert limit == 1, training

        # When a user retrains by hand: a flow run id and UI link, then a new model version.
        done = mlpipe(stack, "retrain", "--data", str(first_year), *SHOP, "--wait")
        assert done.returncode == 0, done.stdout + done.stderr[-3000:]
        assert "/runs/flow-run/" in done.stdout
        # The deployment's run carries mlpipe's stage lines in its Prefect logs (UI and API),
        # and the `mlpipe deploy` console shows them too.
        run_id = re.search(r"/runs/flow-run/([0-9a-f-]{36})", done.stdout).group(1)  # type: ignore[union-attr]
        lines = run_logs(stack, run_id)
        stages = {name for name, _ in lines if name.startswith("mlpipe.")}
        assert {"mlpipe.validate", "mlpipe.train", "mlpipe.promote"} <= stages, sorted(stages)
        decided = [m for n, m in lines if n == "mlpipe.promote" and m.startswith("mlpipe-shop v")]
        assert decided, lines
        retrained = mlflow_run_tags(stack, run_id)
        assert "mlpipe.validate" in (stack.workdir / "deploy.log").read_text()
        # The decision, from the run's final state: version, promoted or not, why, metrics.
        assert re.search(
            r"finished: Completed: mlpipe-shop v\d+ (promoted to champion|not promoted): "
            r"(?!not promoted)(?!promoted).+ \(.*test_rmse=[0-9.]+.*\)$",
            done.stdout.strip().splitlines()[-1],
        ), done.stdout
        versions = stack.mlflow("model-versions/search?filter=name%3D%27mlpipe-shop%27")
        tags = [{t["key"]: t["value"] for t in v.get("tags", [])}
                for v in versions["model_versions"]]  # fmt: skip
        # The one-minute schedule may be registering another version right now ("pending");
        # the run we waited for is finished: its version has a decision and a model card.
        final = [t for t in tags if t.get("mlpipe.decision") in {"promoted", "not promoted"}]
        assert final, tags
        assert all("mlpipe.model_card" in t for t in final)

        # Then the one-minute schedule produces a completed run on its own.
        scheduled = wait_for(lambda: completed_runs(stack, auto_scheduled=True), 180, every=5)
        assert scheduled, "no scheduled run completed within 3 minutes"

        # When a drifted batch is seen twice: exactly one retraining starts (de-dup + cooldown).
        for _ in range(2):
            run = mlpipe(stack, "monitor", "--data", str(first_year), *SHOP,
                         "--batch", str(drifted))  # fmt: skip
            assert run.returncode == 0, run.stdout + run.stderr[-3000:]
        triggered = stack.flow_runs(tags={"all_": [DRIFT_TAG]})
        assert len(triggered) == 1, triggered
        finished = wait_for(lambda: run_state(stack, triggered[0]["id"]) in
                            {"COMPLETED", "FAILED", "CRASHED"} or None, 240, every=5)  # fmt: skip
        assert finished and run_state(stack, triggered[0]["id"]) == "COMPLETED"
        # It trained on the reference plus the accepted drifted batch, and decided.
        tags = mlflow_run_tags(stack, triggered[0]["id"])
        assert tags["mlpipe.window.batches"] == "1"
        assert tags["mlpipe.dataset.rows"] == "6000", "3000 reference + 3000 accepted rows"
        assert tags["mlpipe.dataset.digest"] != retrained["mlpipe.dataset.digest"]
        decided = stack.mlflow("model-versions/search?filter=" + quote(
            f"name='mlpipe-shop' and run_id='{tags['run_id']}'"))  # fmt: skip
        version_tags = {t["key"]: t["value"] for t in decided["model_versions"][0]["tags"]}
        assert version_tags["mlpipe.decision"] in {"promoted", "not promoted"}, version_tags

        # SIGTERM (what `docker stop` sends) ends `mlpipe deploy` cleanly.
        deploy.send_signal(signal.SIGTERM)
        assert deploy.wait(timeout=60) == 0
        assert "stopped serving" in (stack.workdir / "deploy.log").read_text()
    finally:
        stop(deploy)


def mlflow_run_tags(stack: Stack, flow_run_id: str) -> dict[str, str]:
    """Tags of the MLflow training run of a Prefect flow run."""
    experiment = stack.mlflow("experiments/get-by-name?experiment_name=mlpipe")["experiment"]
    found = stack.mlflow("runs/search", {
        "experiment_ids": [experiment["experiment_id"]],
        "filter": f"tags.`mlpipe.prefect.flow_run_id` = '{flow_run_id}'",
    })["runs"]  # fmt: skip
    assert len(found) == 1, found
    return {t["key"]: t["value"] for t in found[0]["data"]["tags"]} | {
        "run_id": found[0]["info"]["run_id"]
    }


def run_logs(stack: Stack, run_id: str) -> list[tuple[str, str]]:
    """(logger name, message) of a flow run's logs in the Prefect API."""
    found = http_json(f"{stack.prefect_api}/logs/filter",
                      {"logs": {"flow_run_id": {"any_": [run_id]}}, "limit": 200})  # fmt: skip
    return [(str(r["name"]), str(r["message"])) for r in found]  # type: ignore[union-attr]


def stack_deployments(stack: Stack) -> int:
    found = http_json(f"{stack.prefect_api}/deployments/filter", {})
    return len(found)  # type: ignore[arg-type]


def completed_runs(stack: Stack, auto_scheduled: bool) -> list[dict]:
    runs = stack.flow_runs(state={"type": {"any_": ["COMPLETED"]}})
    return [r for r in runs if bool(r.get("auto_scheduled")) == auto_scheduled]


def run_state(stack: Stack, run_id: str) -> str:
    return str(http_json(f"{stack.prefect_api}/flow_runs/{run_id}")["state_type"])  # type: ignore[index]


def test_cli_refuses_deploy_without_a_server(tmp_path, monkeypatch, capsys):
    from mlpipe.cli import main

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    assert main(["deploy", "--dataset", "penguins"]) == 1
    assert "needs a Prefect server" in capsys.readouterr().err
