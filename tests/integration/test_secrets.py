"""A sentinel password in every place a credential can come from, and nowhere it may go.

The servers' database URLs carry the sentinel (see conftest); the clients reach MLflow with it
in the tracking URI (basic auth in the URL). After training, batch predictions, validation and
listing, the sentinel must appear in no artifact, param, tag, model version, Prefect flow-run
parameter or log, process command line, command output, run directory or server log.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient
from palmerpenguins import load_penguins

from tests.integration.stack import SENTINEL, Stack, http_json

pytestmark = [pytest.mark.integration, pytest.mark.slow]
NAME = "mlpipe-secretcheck"


def command(stack: Stack, cwd: Path, env: dict[str, str], *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "mlpipe", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout + done.stderr


def test_a_sentinel_password_appears_nowhere(stack: Stack, tmp_path: Path):
    host = stack.mlflow_uri.removeprefix("http://")
    env = {**stack.env, "MLFLOW_TRACKING_URI": f"http://mlpipe:{SENTINEL}@{host}"}
    batch = tmp_path / "batch.csv"
    load_penguins().drop(columns=["species"]).to_csv(batch, index=False)
    train = ["--set", f"tracking.model_name={NAME}", "--set", "train.max_epochs=12",
             "--set", "train.learning_rate=0.01", "--set", "promotion.resamples=300"]  # fmt: skip
    output = command(stack, tmp_path, env, "train", "--dataset", "penguins", *train)
    output += command(stack, tmp_path, env, "predict", "--model", NAME, "--input", str(batch),
                      "--output", str(tmp_path / "scored.parquet"))  # fmt: skip
    output += command(stack, tmp_path, env, "validate", "--data", str(batch), "--model", NAME)
    output += command(stack, tmp_path, env, "models", "--model", NAME)
    output += command(stack, tmp_path, env, "config", "--dataset", "penguins")
    places: dict[str, str] = {"command output": output}

    # Every process on the machine, servers included.
    places["ps"] = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert "mlflow" in places["ps"] and "prefect" in places["ps"], "the servers are running"

    # MLflow: runs (params, tags, metrics names), models, versions, and every artifact file.
    client = MlflowClient(tracking_uri=stack.mlflow_uri, registry_uri=stack.mlflow_uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(experiments)
    assert len(runs) >= 2, "training and batch prediction were recorded"
    places["runs"] = json.dumps([[r.data.params, r.data.tags, r.info.run_name] for r in runs])
    model = client.get_registered_model(NAME)
    versions = client.search_model_versions(f"name='{NAME}'")
    registry = [model.tags, model.description, [[v.tags, v.source] for v in versions]]
    places["registry"] = json.dumps(registry, default=str)
    artifacts = [p for p in (stack.workdir / "artifacts").rglob("*") if p.is_file()]
    assert any(p.name == "model_card.html" for p in artifacts)
    for path in artifacts:
        places[f"artifact {path.name}"] = path.read_bytes().decode("latin-1")

    # Prefect: flow-run parameters, logs and artifacts.
    flow_runs = http_json(f"{stack.prefect_api}/flow_runs/filter", {})
    places["flow runs"] = json.dumps(flow_runs)
    places["prefect logs"] = json.dumps(http_json(f"{stack.prefect_api}/logs/filter", {}))
    places["prefect artifacts"] = json.dumps(http_json(f"{stack.prefect_api}/artifacts/filter",
                                                       {}))  # fmt: skip

    # Files written here (run directories, outputs) and the servers' own logs.
    for path in [*tmp_path.rglob("*"), *stack.workdir.glob("*.log")]:
        if path.is_file() and path.suffix not in {".db"}:
            places[f"file {path.name}"] = path.read_bytes().decode("latin-1")

    leaked = {name: text[max(0, text.index(SENTINEL) - 200) : text.index(SENTINEL) + 50]
              for name, text in places.items() if SENTINEL in text}  # fmt: skip
    assert not leaked, f"the password leaked into: {leaked}"
