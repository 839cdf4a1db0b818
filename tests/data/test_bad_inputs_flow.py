"""Bad inputs that only show inside the flow: nothing is registered, champion is untouched."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient

from flows.training import training
from mlpipe.config import build_config
from mlpipe.errors import DataError, TrainingError
from tests.helpers import make_mixed_frame

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]

FAST = {"train": {"max_epochs": 10, "hidden_layers": [8], "learning_rate": 0.01}}


def nothing_registered(workdir: Path) -> None:
    assert MlflowClient().search_registered_models() == []
    assert list((workdir / "runs").iterdir()) == [], "run directory removed"
    runs = MlflowClient().search_runs(["1"]) if (workdir / "mlflow.db").exists() else []
    assert all(r.info.status == "FAILED" for r in runs), "no run left RUNNING"


def test_all_rows_duplicated_fails_on_the_drop_rate(isolated_workdir: Path):
    path = isolated_workdir / "dupes.csv"
    row = make_mixed_frame(n=1).assign(label="high")
    pd.concat([row] * 30 + [row.assign(label="low")] * 30).to_csv(path, index=False)
    config = build_config({"dataset": {"source": str(path), "target": "label"}, **FAST})
    with pytest.raises(DataError, match=r"cleaning dropped 58 of 60 rows .*duplicate 58"):
        training(config)
    nothing_registered(isolated_workdir)


def test_a_diverging_network_fails_before_registration(isolated_workdir: Path):
    path = isolated_workdir / "data.csv"
    make_mixed_frame(n=300).to_csv(path, index=False)
    config = build_config({"dataset": {"source": str(path), "target": "label"},
                           "train": {"learning_rate": 1e12, "max_epochs": 5}})  # fmt: skip
    with pytest.raises(TrainingError, match="training diverged"):
        training(config)
    nothing_registered(isolated_workdir)


def test_unicode_column_names_survive_the_whole_flow(isolated_workdir: Path):
    path = isolated_workdir / "données.csv"
    frame = make_mixed_frame(n=200).rename(columns={"size": "Größe (cm)", "label": "Klasse ✓"})
    frame.to_csv(path, index=False)
    config = build_config({"dataset": {"source": str(path), "target": "Klasse ✓"}, **FAST})
    result = training(config)
    assert result.model_name == "mlpipe-données" and result.version == "1"
