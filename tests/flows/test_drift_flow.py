"""Drift against the champion's training data, through the flow and `mlpipe validate`."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow import MlflowClient

from flows.training import training
from mlpipe.cli import main
from mlpipe.config import build_config
from mlpipe.errors import DataDriftError
from tests.helpers import make_shop_year

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]


def config_for(path: Path, gate: str = "warn"):
    return build_config(
        {
            "dataset": {"source": str(path), "name": "shop", "target": "spend",
                        "ignore": ["year"]},
            # Drift is judged against the champion: no linear baseline to out-do on this
            # linear data, so the first version becomes champion.
            "train": {"max_epochs": 10, "hidden_layers": [16], "learning_rate": 0.01,
                      "baseline": "none"},
            "validation": {"drift": {"gate": gate}},
        }
    )  # fmt: skip


def test_a_shifted_year_drifts_on_the_shifted_columns_only(isolated_workdir: Path, capsys):
    first_year = isolated_workdir / "shop_2023.csv"
    make_shop_year(4000, seed=0).to_csv(first_year, index=False)
    trained = training(config_for(first_year))
    assert trained.promoted

    later = isolated_workdir / "shop_2024.csv"
    make_shop_year(4000, seed=1, shift_price=25.0, web_share=0.75).to_csv(later, index=False)
    capsys.readouterr()
    # Without a suite for this file, validate refuses to pass it on structure alone...
    assert main(["validate", "--data", str(later)]) == 1
    assert "no expectation suite for dataset 'shop_2024'" in capsys.readouterr().err
    # ...and with --model it judges the batch with the suite the model was trained with.
    code = main(["validate", "--data", str(later), "--model", "mlpipe-shop"])
    out = capsys.readouterr().out
    assert code == 0, "drift gate is warn by default"
    assert "suite `shop-structural`" in out, "the suite stored with the model"
    assert "drift in price, channel" in out or "drift in channel, price" in out, out
    rows = {line.split("|")[1].strip(): line for line in out.splitlines() if line.count("|") == 7}
    for stable in ("visits", "region"):
        assert rows[stable].endswith("| no |"), rows[stable]
    for shifted in ("price", "channel"):
        assert rows[shifted].endswith("| **yes** |"), rows[shifted]

    # The drift gate set to fail stops a training run on the shifted year before training.
    with pytest.raises(DataDriftError, match=r"price .*PSI|channel .*PSI"):
        training(config_for(later, gate="fail"))
    versions = MlflowClient().search_model_versions("name='mlpipe-shop'")
    assert len(versions) == 1, "nothing registered from drifted data"


def test_training_run_logs_drift_evidence(isolated_workdir: Path):
    path = isolated_workdir / "shop.csv"
    make_shop_year(1500, seed=2).to_csv(path, index=False)
    training(config_for(path))
    again = training(config_for(path))
    client = MlflowClient()
    run = client.get_run(again.run_id)
    assert run.data.tags["mlpipe.drift.status"] == "stable"
    assert run.data.tags["mlpipe.drift.reference_version"] == "1"
    assert run.data.metrics["drift_columns"] == 0
    files = {a.path for a in client.list_artifacts(again.run_id, "drift")}
    assert {"drift/drift_table.json", "drift/psi.png", "drift/summary.md",
            "drift/reference_profile.json"} <= files  # fmt: skip
