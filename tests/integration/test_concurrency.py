"""Four `mlpipe train` at once: every run finishes, exactly one consistent champion.

Runs on a new SQLite store (MLflow's first-use schema setup must be serialised) and on the
PostgreSQL-backed MLflow server (alias moves must be compare-and-set).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tests.integration.procs import assert_one_consistent_champion, launch
from tests.integration.stack import Stack

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def four_trainings(env: dict[str, str], cwd: Path, name: str) -> None:
    runs = []
    for i in range(4):
        args = ["train", "--dataset", "penguins", "--set", f"tracking.model_name={name}",
                "--set", "train.max_epochs=12", "--set", "train.learning_rate=0.01",
                "--set", f"train.hidden_layers=[{8 * (i + 1)}]", "--set", f"seed={i}",
                "--set", "promotion.resamples=300"]  # fmt: skip
        runs.append(launch(args, env, cwd, f"{name}-{i}"))
    for i, proc in enumerate(runs):
        try:
            proc.wait(timeout=600)
        except subprocess.TimeoutExpired:
            proc.kill()
        err = (cwd / f"{name}-{i}.err").read_text()
        assert proc.returncode == 0, err[-3000:]
        assert "Traceback" not in err


@pytest.mark.usefixtures("prefect_harness")
def test_four_concurrent_runs_on_a_new_sqlite_store(tmp_path: Path):
    import prefect.settings

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri,
           "PREFECT_API_URL": str(prefect.settings.PREFECT_API_URL.value())}  # fmt: skip
    four_trainings(env, tmp_path, "mlpipe-race-sqlite")
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    assert_one_consistent_champion(client, "mlpipe-race-sqlite", versions=4)
    runs = client.search_runs([client.get_experiment_by_name("mlpipe").experiment_id])
    assert len(runs) == 4 and {r.info.status for r in runs} == {"FINISHED"}


def test_four_concurrent_runs_on_the_postgresql_backed_server(stack: Stack, tmp_path: Path):
    four_trainings(stack.env, tmp_path, "mlpipe-race-server")
    client = MlflowClient(tracking_uri=stack.mlflow_uri, registry_uri=stack.mlflow_uri)
    assert_one_consistent_champion(client, "mlpipe-race-server", versions=4)
    runs = client.search_runs(
        [client.get_experiment_by_name("mlpipe").experiment_id],
        "tags.`mlpipe.model.name` = 'mlpipe-race-server'",
    )
    assert len(runs) == 4 and {r.info.status for r in runs} == {"FINISHED"}
