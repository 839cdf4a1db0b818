"""The data-quality gate inside the training flow: quarantine, limits, accounting."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.artifacts import download_artifacts

from flows.training import training
from mlpipe.config import build_config
from mlpipe.errors import DataValidationError
from mlpipe.quality.gate import REASONS_COLUMN

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]


def corrupted_penguins(workdir: Path, share: float) -> tuple[Path, pd.DataFrame]:
    """Penguins with ``share`` of the rows given an island that does not exist."""
    from palmerpenguins import load_penguins

    frame = load_penguins()
    rng = np.random.default_rng(7)
    rows = rng.choice(len(frame), size=round(share * len(frame)), replace=False)
    frame.loc[rows, "island"] = "Atlantis"
    path = workdir / f"penguins_{int(share * 100)}pct.csv"
    frame.to_csv(path, index=False)
    return path, frame.loc[rows]


def config_for(path: Path):
    return build_config(
        {
            # name=penguins: the penguins suite applies to this file.
            "dataset": {"source": str(path), "name": "penguins", "target": "species"},
            "train": {"max_epochs": 10, "hidden_layers": [16], "learning_rate": 0.01},
        }
    )


def test_three_percent_bad_rows_are_quarantined_and_the_run_succeeds(isolated_workdir: Path):
    path, bad = corrupted_penguins(isolated_workdir, 0.03)
    result = training(config_for(path))
    assert result.promoted and result.version == "1"

    client = MlflowClient()
    metrics = client.get_run(result.run_id).data.metrics
    # MLflow groups the charts by the name's prefix: rows/..., train/..., test/...
    assert metrics["rows/quarantined"] == len(bad) == 10
    assert metrics["rows/in"] == 344
    assert metrics["rows/in"] == (
        metrics["rows/kept"] + metrics["rows/quarantined"] + metrics["rows/dropped"]
    ), "every row is accounted for"
    local = download_artifacts(run_id=result.run_id, artifact_path="validation/quarantine.parquet")
    quarantined = pd.read_parquet(local)
    assert set(quarantined[REASONS_COLUMN]) == {"column_values_to_be_in_set:island"}
    key = ["bill_length_mm", "bill_depth_mm", "body_mass_g", "year", "sex"]
    assert sorted(map(str, quarantined[key].to_numpy().tolist())) == sorted(
        map(str, bad[key].to_numpy().tolist())
    ), "exactly the corrupted rows are in quarantine"
    artifacts = {a.path for a in client.list_artifacts(result.run_id, "validation")}
    assert "validation/report.html" in artifacts and "validation/quarantine.parquet" in artifacts

    # The same summary is a markdown artifact in the Prefect UI.
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    with get_client(sync_client=True) as prefect:
        # The Prefect server is shared by the test session: take this run's, the newest.
        found = prefect.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["validation-penguins"])),
            sort=ArtifactSort.CREATED_DESC,
            limit=1,
        )
        # Each kind of artifact under its own title: the evaluation's metrics too.
        evaluation = prefect.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["evaluation-penguins"])),
            sort=ArtifactSort.CREATED_DESC,
            limit=1,
        )
    assert found and found[0].type == "markdown"
    assert "quarantined: **10**" in str(found[0].data)
    assert evaluation and evaluation[0].description == "mlpipe evaluation"
    test_accuracy = result.metrics["test_accuracy"]
    assert f"| test_accuracy | {test_accuracy:.4f} |" in str(evaluation[0].data)


def test_ten_percent_bad_rows_fail_before_training(isolated_workdir: Path):
    path, bad = corrupted_penguins(isolated_workdir, 0.10)
    with pytest.raises(DataValidationError, match=r"34 of 344 rows quarantined"):
        training(config_for(path))
    client = MlflowClient()
    assert client.search_registered_models() == [], "nothing is registered"
    runs = client.search_runs([client.get_experiment_by_name("mlpipe").experiment_id])
    assert len(runs) == 1 and runs[0].info.status == "FAILED"
    assert "train/loss" not in runs[0].data.metrics, "training never started"
    assert runs[0].data.metrics["rows/quarantined"] == len(bad)
