"""Training from a URL, and personal data kept out of everything a run and a batch store."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.models import get_model_info
from palmerpenguins import load_penguins

from flows.training import training
from mlpipe.cli import main
from mlpipe.config import DatasetSpec, build_config
from mlpipe.data.datasets import load_source
from mlpipe.io.tables import frame_digest
from tests.helpers import make_mixed_frame

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]
FAST = {"max_epochs": 15, "hidden_layers": [32], "learning_rate": 0.01}
MARK = "@mail.example"


def test_training_and_predicting_from_files_served_over_http(
    web_folder, isolated_workdir: Path, capsys
):
    url, folder = web_folder
    load_penguins().to_parquet(folder / "penguins.parquet")
    source = f"{url}/penguins.parquet"
    config = build_config(
        {"dataset": {"source": source, "target": "species", "ignore": ["year"]}, "train": FAST}
    )
    result = training(config)
    assert result.version == "1", result.reason
    version = MlflowClient().get_model_version("mlpipe-penguins", "1")
    assert version.tags["mlpipe.dataset.source"] == source
    local = load_source(DatasetSpec(source=str(folder / "penguins.parquet")))
    assert version.tags["mlpipe.dataset.digest"] == frame_digest(local)

    # Batch predictions from a URL to a URL (file://: a writable filesystem, like s3://).
    load_penguins().drop(columns=["species"]).to_csv(folder / "batch.csv", index=False)
    out = isolated_workdir / "bucket" / "scored.parquet"
    out.parent.mkdir()
    args = ["predict", "--model", "mlpipe-penguins", "--input", f"{url}/batch.csv"]
    assert main([*args, "--output", f"file://{out}"]) == 0
    assert len(pd.read_parquet(out)) == 344
    assert not list(out.parent.glob(".*")), "nothing but the output is uploaded"
    assert main([*args, "--output", f"{url}/scored.csv"]) == 1  # a web server is read-only
    assert "http(s) URLs are read-only" in capsys.readouterr().err

    # Monitoring a batch given by its URL: judged against the champion like a local file.
    load_penguins().head(60).to_csv(folder / "new.csv", index=False)
    monitor = ["monitor", "--data", source, "--target", "species", "--set", "dataset.ignore=[year]"]
    assert main([*monitor, "--batch", f"{url}/new.csv"]) == 0
    assert "retrain" not in capsys.readouterr().out.split(":")[0]
    assert main([*monitor, "--batch", f"{url}/none.csv"]) != 0
    assert f"data not found: {url}/none.csv" in capsys.readouterr().err


def stored_text(path: Path) -> str:
    if path.suffix == ".parquet":
        return pd.read_parquet(path).to_csv()
    return path.read_bytes().decode("latin-1")


def test_listed_personal_data_is_in_no_artifact_report_or_store(
    isolated_workdir: Path, monkeypatch, capsys
):
    monkeypatch.setenv("MLPIPE_PII_SALT", "flow-test-salt")
    frame = make_mixed_frame(400)
    frame["email"] = [f"person{i}{MARK}" for i in range(len(frame))]
    data = isolated_workdir / "customers.csv"
    frame.to_csv(data, index=False)

    # Unlisted: refused with one line, nothing registered.
    args = ["train", "--data", str(data), "--target", "label", "--set", "train.max_epochs=15",
            "--set", "train.hidden_layers=[32]", "--set", "train.learning_rate=0.01"]  # fmt: skip
    assert main(args) != 0
    assert "'email' (e-mail addresses) look like personal data" in capsys.readouterr().err
    assert not MlflowClient().search_registered_models()

    # A profiled suite (value sets, ranges), so a batch row can be quarantined below.
    pii = ["--set", "dataset.pii=[email]"]
    assert main(["expectations", "init", "--data", str(data), "--target", "label", *pii]) == 0
    assert MARK not in (isolated_workdir / "expectations" / "customers.json").read_text()
    assert main([*args, *pii]) == 0
    out = capsys.readouterr().out

    # A batch with a row the suite quarantines: the quarantine (logged to MLflow) is hashed.
    batch = frame.drop(columns=["label"]).head(50).copy()
    batch.loc[3, "region"] = "west"
    batch.to_csv(isolated_workdir / "batch.csv", index=False)
    predictions = isolated_workdir / "scored.parquet"
    assert main(["predict", "--model", "mlpipe-customers", "--input", "batch.csv",
                 "--output", str(predictions)]) == 0  # fmt: skip
    quarantine = pd.read_parquet(isolated_workdir / "scored.quarantine.parquet")
    assert quarantine["region"].tolist() == ["west"]
    assert quarantine["email"].str.startswith("pii:").all()
    out += capsys.readouterr().out

    # Validation report and monitoring of a batch with the target.
    batch = frame.head(80).copy()
    batch.to_csv(isolated_workdir / "labelled.csv", index=False)
    main(["validate", "--data", "labelled.csv", "--model", "mlpipe-customers", "--target",
          "label", *pii, "--report", "report.md"])  # fmt: skip
    out += capsys.readouterr().out

    user_files = {data, isolated_workdir / "batch.csv", isolated_workdir / "labelled.csv",
                  predictions}  # fmt: skip
    scanned = {p: stored_text(p) for p in isolated_workdir.rglob("*")
               if p.is_file() and p not in user_files}  # fmt: skip
    assert any(p.name == "model_card.html" for p in scanned)
    assert any("quarantine" in p.name for p in scanned)
    assert (isolated_workdir / "report.md").exists()
    leaked = [str(p) for p, text in scanned.items() if MARK in text]
    assert not leaked
    assert MARK not in out
    client = MlflowClient()
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert MARK not in str([[r.data.params, r.data.tags] for r in runs])
    version = client.get_model_version("mlpipe-customers", "1")
    inputs = get_model_info(version.source).signature.inputs.input_names()
    assert "size" in inputs and "email" not in inputs  # never a feature
