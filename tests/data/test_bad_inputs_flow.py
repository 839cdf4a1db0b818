"""Bad inputs that only show inside the flow: nothing is registered, champion is untouched."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient

from flows.training import training
from tasks.core.config import build_config
from tasks.core.errors import DataError
from tests.helpers import make_mixed_frame

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]

FAST = {"train": {"max_epochs": 3, "hidden_layers": [8]}}


def test_all_rows_duplicated_fails_after_cleaning(isolated_workdir: Path):
    path = isolated_workdir / "dupes.csv"
    row = make_mixed_frame(n=1).assign(label="high")
    pd.concat([row] * 30 + [row.assign(label="low")] * 30).to_csv(path, index=False)
    config = build_config({"dataset": {"source": str(path), "target": "label"}, **FAST})
    with pytest.raises(DataError, match=r"only 2 of 60 rows left after cleaning"):
        training(config)
    assert MlflowClient().search_registered_models() == []
    assert list((isolated_workdir / "runs").iterdir()) == [], "run directory removed"


def test_unicode_column_names_survive_the_whole_flow(isolated_workdir: Path):
    path = isolated_workdir / "données.csv"
    frame = make_mixed_frame(n=200).rename(columns={"size": "Größe (cm)", "label": "Klasse ✓"})
    frame.to_csv(path, index=False)
    config = build_config({"dataset": {"source": str(path), "target": "Klasse ✓"}, **FAST})
    result = training(config)
    assert result.model_name == "mlpipe-données" and result.version == "1"
