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
    assert run.data.metrics["drift/columns"] == 0
    files = {a.path for a in client.list_artifacts(again.run_id, "drift")}
    assert {"drift/drift_table.json", "drift/psi.png", "drift/summary.md",
            "drift/reference_profile.json"} <= files  # fmt: skip


def test_monitoring_keeps_passing_batches_and_a_window_trains_on_them(isolated_workdir: Path):
    from flows.monitoring import monitoring
    from mlpipe.monitoring import batch_store

    first_year = isolated_workdir / "shop_2023.csv"
    make_shop_year(1500, seed=0).to_csv(first_year, index=False)
    config = config_for(first_year)
    reference = training(config)
    drifted = isolated_workdir / "shop_2024.csv"
    make_shop_year(600, seed=1, shift_price=25.0, web_share=0.75).to_csv(drifted, index=False)

    # When monitoring sees a batch that passes the gate: it is kept beside the source...
    decision = monitoring(config, str(drifted))
    # Drift, on a server where nobody ran `mlpipe deploy`: said so, not a crash.
    assert decision.action == "no deployment", decision
    assert "drift in " in decision.reason and "start `mlpipe deploy`" in decision.reason
    store = batch_store(config)
    assert store == isolated_workdir / "shop_2023.csv.batches"
    kept = list(store.glob("date=*/batch-*.parquet"))
    assert len(kept) == 1
    # ...once, however often it is seen; a batch without labels is not kept.
    monitoring(config, str(drifted))
    unlabelled = isolated_workdir / "unlabelled.csv"
    make_shop_year(300, seed=3).drop(columns="spend").to_csv(unlabelled, index=False)
    monitoring(config, str(unlabelled))
    assert list(store.glob("date=*/batch-*.parquet")) == kept

    # The monitoring run holds the drift table, its plot and the decision.
    client = MlflowClient()
    runs = client.search_runs(
        [client.get_experiment_by_name("mlpipe-monitoring").experiment_id],
        order_by=["attributes.start_time ASC"],
    )
    first = runs[0]
    assert first.data.tags["mlpipe.monitor.action"] == "no deployment"
    assert first.data.tags["mlpipe.monitor.accepted"].startswith("kept 600 rows in ")
    assert runs[1].data.tags["mlpipe.monitor.accepted"].startswith("already kept")
    assert "no 'spend' column" in runs[2].data.tags["mlpipe.monitor.accepted"]
    files = {a.path for a in client.list_artifacts(first.info.run_id, "drift")}
    assert {"drift/drift_table.json", "drift/psi.png", "drift/summary.md"} <= files
    assert first.data.metrics["drift/columns"] >= 2
    decided = client.download_artifacts(first.info.run_id, "monitor/decision.md")
    assert "# Monitoring: no deployment" in Path(decided).read_text()

    # A windowed run (what deployments start) trains on the reference plus the kept batch.
    windowed = training(config, window=True)
    tags = client.get_run(windowed.run_id).data.tags
    before = client.get_run(reference.run_id).data.tags
    assert tags["mlpipe.window.batches"] == "1"
    assert int(tags["mlpipe.dataset.rows"]) == 1500 + 600
    assert tags["mlpipe.dataset.digest"] != before["mlpipe.dataset.digest"]
    # A window of no batches is the reference alone: the same data as the first run.
    none = training(config.model_copy(update={"schedule": config.schedule.model_copy(
        update={"window": config.schedule.window.model_copy(update={"batches": 0})})}),
        window=True)  # fmt: skip
    tags = client.get_run(none.run_id).data.tags
    assert tags["mlpipe.window.batches"] == "0"
    assert tags["mlpipe.dataset.digest"] == before["mlpipe.dataset.digest"]
