"""The whole training flow on real data, with MLflow in a temporary directory."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.artifacts import download_artifacts

from flows.training import training
from mlpipe.config import build_config
from mlpipe.data.datasets import load_source
from mlpipe.errors import DataValidationError
from mlpipe.io.tables import frame_digest
from tests.helpers import make_mixed_frame

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]

# Small and quick, but a sound model: the gate refuses networks that a baseline beats.
FAST = {"train": {"max_epochs": 15, "hidden_layers": [32, 16], "learning_rate": 0.01}}


def fresh_process_predict(model_uri: str, rows: pd.DataFrame, workdir: Path) -> pd.DataFrame:
    """Load a model in a new Python process (another cwd) and predict ``rows``."""
    rows_path = workdir / "rows.parquet"
    rows.to_parquet(rows_path)
    code = (
        "import sys, mlflow, pandas as pd\n"
        f"model = mlflow.pyfunc.load_model({model_uri!r})\n"
        f"out = model.predict(pd.read_parquet({str(rows_path)!r}))\n"
        "print(out.to_json(orient='split'))\n"
    )
    elsewhere = workdir / "elsewhere"
    elsewhere.mkdir(exist_ok=True)
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=elsewhere, capture_output=True, text=True, env=os.environ
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return pd.read_json(io.StringIO(done.stdout.strip().splitlines()[-1]), orient="split")


def test_penguins_lifecycle(isolated_workdir: Path):
    client = MlflowClient()
    config = build_config({"dataset": {"source": "penguins"}, **FAST})

    # Given a first run: version 1 is registered and takes `champion`.
    first = training(config)
    assert (first.version, first.promoted) == ("1", True), first.reason
    assert str(client.get_model_version_by_alias("mlpipe-penguins", "champion").version) == "1"

    run = client.get_run(first.run_id)
    assert run.info.status == "FINISHED"
    # Grouped names, so MLflow's UI shows one section per group (test, baseline, clean, ...).
    for key in ("test/accuracy", "test/macro_f1", "test/roc_auc", "test/log_loss",
                "baseline/accuracy", "trivial/accuracy", "clean/rows_in", "clean/rows_kept",
                "train/loss", "val/loss", "val/accuracy", "train/best_epoch"):  # fmt: skip
        assert key in run.data.metrics, f"metric {key} missing"
    assert not [k for k in run.data.metrics if "/" not in k], "every metric is in a group"
    assert run.data.metrics["clean/rows_in"] == 344
    assert run.data.params["train.max_epochs"] == "15"
    assert run.data.params["train.hidden_layers"] == "[32, 16]"
    tags = run.data.tags
    assert tags["mlpipe.validation.status"] == "passed"
    assert tags["mlpipe.dataset.digest"] == frame_digest(load_source(config.dataset))
    assert len(tags["mlpipe.git.commit"]) in (40, 7) and tags["mlpipe.git.dirty"] in {
        "true",
        "false",
    }
    assert run.inputs.dataset_inputs[0].dataset.name == "penguins"
    history = client.get_metric_history(first.run_id, "val/loss")
    assert [m.step for m in history] == list(range(1, len(history) + 1)), "one point per epoch"
    artifacts = {a.path for a in client.list_artifacts(first.run_id, "plots")}
    assert artifacts == {
        "plots/confusion_matrix.png", "plots/roc_pr_curves.png",
        "plots/learning_curves.png", "plots/correlation_heatmap.png",
    }  # fmt: skip
    assert {a.path for a in client.list_artifacts(first.run_id, "validation")} == {
        "validation/result.json", "validation/summary.md", "validation/report.html",
        "validation/suite.json",
    }  # fmt: skip

    # And the model is filed with its run (its experiment, artifacts beside the store).
    logged = client.get_logged_model(
        client.get_model_version("mlpipe-penguins", "1").source.removeprefix("models:/")
    )
    assert logged.experiment_id == run.info.experiment_id and logged.source_run_id == first.run_id
    assert logged.artifact_location.startswith((isolated_workdir / "mlruns").as_uri())

    # And every version has a model card, self-contained, pointed to by a version tag.
    card_uri = client.get_model_version("mlpipe-penguins", "1").tags["mlpipe.model_card"]
    assert card_uri == f"runs:/{first.run_id}/model_card/model_card.html"
    card = Path(download_artifacts(card_uri)).read_text()
    needed = ["95% CI (bootstrap", "class=Adelie", "Promotion gate", "data:image/png;base64"]
    for text in [*needed, tags["mlpipe.dataset.digest"], tags["mlpipe.git.commit"]]:
        assert text in card, text
    for forbidden in ("http://", "https://", "<script"):
        assert forbidden not in card, forbidden
    # The version page (which renders Markdown) links the card, the run and the alias history.
    description = client.get_model_version("mlpipe-penguins", "1").description
    assert description.startswith("**promoted to champion**: "), description
    experiment = run.info.experiment_id
    page = f"#/experiments/{experiment}/runs/{first.run_id}"
    assert f"[Model card]({page}/artifactPath/model_card/model_card.html)" in description
    history = Path(download_artifacts(f"runs:/{first.run_id}/registry/alias_history.md"))
    assert "| 1 | " in history.read_text() and "| - | v1 | - |" in history.read_text()

    # When the same config runs again: identical metrics, version 2 is not promoted.
    second = training(config)
    assert second.metrics == first.metrics, "same config and seed must give identical metrics"
    assert (second.version, second.promoted) == ("2", False)
    assert str(client.get_model_version_by_alias("mlpipe-penguins", "champion").version) == "1"
    v2 = client.get_model_version("mlpipe-penguins", "2")
    assert v2.tags["mlpipe.decision"] == "not promoted"
    assert "below the margin" in v2.tags["mlpipe.decision.reason"]
    assert v2.tags["mlpipe.decision.compared_with"] == "1"
    assert v2.tags["mlpipe.eligible"] == "true", "sound, just not better: eligible for rollback"
    assert v2.description.startswith("**not promoted**: ")

    # When the data lose a required column: the flow stops before training.
    broken = isolated_workdir / "broken.csv"
    load_source(config.dataset).drop(columns=["flipper_length_mm"]).to_csv(broken, index=False)
    bad = build_config(
        {"dataset": {"source": str(broken), "name": "penguins", "target": "species"}, **FAST}
    )
    with pytest.raises(DataValidationError, match="flipper_length_mm"):
        training(bad)
    versions = client.search_model_versions("name='mlpipe-penguins'")
    assert len(versions) == 2, "a failed validation must not register anything"
    assert str(client.get_model_version_by_alias("mlpipe-penguins", "champion").version) == "1"
    failed = client.search_runs(
        [run.info.experiment_id], "tags.`mlpipe.validation.status` = 'failed'"
    )
    assert len(failed) == 1 and failed[0].info.status == "FAILED"
    assert client.list_artifacts(failed[0].info.run_id, "validation"), "failed result is logged"
    assert len(list((isolated_workdir / "runs").iterdir())) == 2, "failed run dir removed"

    # Then the champion reloads in a fresh process and predicts raw rows, NaNs included.
    raw = load_source(config.dataset).drop(columns=["species"])
    rows = pd.concat([raw[raw.isna().any(axis=1)].head(5), raw.head(5)])
    assert rows.isna().any().any()
    served = fresh_process_predict("models:/mlpipe-penguins@champion", rows, isolated_workdir)
    assert len(served) == len(rows)
    assert set(served["prediction"]) <= {"Adelie", "Chinstrap", "Gentoo"}
    proba = served[[c for c in served.columns if c.startswith("proba_")]]
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)


@pytest.mark.parametrize("regression", [False, True])
def test_arbitrary_csv_without_code_changes(isolated_workdir: Path, regression: bool):
    path = isolated_workdir / ("prices.csv" if regression else "labels.csv")
    frame = make_mixed_frame(n=400, regression=regression)
    # One-hot names that collide: column "tier" value "b_c" and column "tier_b" value "c".
    rng = np.random.default_rng(3)
    frame["tier"], frame["tier_b"] = rng.choice(["b_c", "x"], 400), rng.choice(["c", "y"], 400)
    frame.to_csv(path, index=False)
    target = "price" if regression else "label"
    config = build_config({"dataset": {"source": str(path), "target": target}, **FAST})
    result = training(config)
    run = MlflowClient().get_run(result.run_id)
    assert run.data.tags["mlpipe.task"] == ("regression" if regression else "binary")
    assert run.data.tags["mlpipe.identifiers"] == "id", "the row id is not a feature"
    if not regression:
        assert result.metrics["test_accuracy"] > 0.8, "the label is learnable from the features"
        assert result.promoted and result.eligible, result.reason
    else:
        assert result.metrics["test_r2"] > 0.5, "the price is learnable from the features"
        # The price is linear in the features: the ridge baseline beats the small network,
        # significantly, so the version is registered but not promoted.
        assert result.metrics["baseline_test_rmse"] < result.metrics["test_rmse"]
        assert not result.promoted and not result.eligible
        assert "significantly worse than the run's own linear baseline" in result.reason


def test_a_partitioned_run_gives_the_one_partition_runs_data_and_judges_on_a_sample(
    isolated_workdir: Path, monkeypatch: pytest.MonkeyPatch
):
    path = isolated_workdir / "shop.csv"
    make_mixed_frame(n=1500).to_csv(path, index=False)
    base = {"dataset": {"source": str(path), "target": "label"}, **FAST}
    whole = training(build_config(base))
    # The same table in 6 partitions, and evidence capped below the test rows.
    monkeypatch.setattr("tasks.evaluate.EVIDENCE_ROWS", 100)
    monkeypatch.setattr("mlpipe.registry.CHAMPION_CHUNK_ROWS", 30)  # the champion scores 4 chunks
    parted = training(build_config(base, overrides=["dataset.partition_rows=250"]))
    client = MlflowClient()
    runs = [client.get_run(r.run_id).data for r in (whole, parted)]
    assert len(list((Path(parted.run_dir) / "raw").glob("part-*.parquet"))) == 6
    # Same rows, same digest, same split, same features: the data path does not depend on cuts.
    assert runs[0].tags["mlpipe.dataset.digest"] == runs[1].tags["mlpipe.dataset.digest"]
    for key in ("rows/train", "rows/val", "rows/test"):
        assert runs[0].metrics[key] == runs[1].metrics[key], key
    for key, value in whole.metrics.items():
        if key.startswith(("trivial_test_", "baseline_test_")):
            assert parted.metrics[key] == pytest.approx(value, abs=1e-6), key
    assert parted.metrics["test_accuracy"] > 0.8
    # Metrics count every test row; the evidence (and the champion's outputs) 100 of them.
    assert runs[0].metrics["test/evidence_rows"] == runs[0].metrics["rows/test"]
    assert runs[1].metrics["test/evidence_rows"] == 100
    assert runs[1].metrics["test/roc_auc_rows"] == runs[1].metrics["rows/test"]  # exact AUC
    card = download_artifacts(run_id=parted.run_id, artifact_path="model_card/model_card.md")
    rows_test = int(runs[1].metrics["rows/test"])
    assert (
        f"count all {rows_test} test rows; the intervals, slices and plots use a uniform "
        "sample of 100 of them" in Path(card).read_text()
    )
    assert len(pd.read_parquet(Path(parted.run_dir) / "evidence_rows.parquet")) == 100
    assert runs[1].tags["mlpipe.decision.compared_with"] == whole.version
    assert runs[1].tags["mlpipe.decision.test"].startswith("paired bootstrap"), parted.reason


def test_digits_mlp_reaches_097_test_accuracy():
    config = build_config(overrides=["dataset.source=digits"])
    result = training(config)
    assert result.metrics["test_accuracy"] >= 0.97, result.metrics


def test_cnn_on_digits_registers():
    config = build_config(
        overrides=["dataset.source=digits", "train.architecture=cnn", "train.max_epochs=3"]
    )
    result = training(config)
    assert result.metrics["test_accuracy"] > 0.8 and result.version == "1"


@pytest.mark.integration
def test_cli_train_on_a_csv(isolated_workdir: Path):
    import prefect.settings

    path = isolated_workdir / "shop.csv"
    make_mixed_frame(n=200).to_csv(path, index=False)
    env = {**os.environ, "PREFECT_API_URL": str(prefect.settings.PREFECT_API_URL.value())}
    done = subprocess.run(
        [sys.executable, "-m", "mlpipe", "train", "--data", str(path), "--target", "label",
         "--set", "train.max_epochs=5"],
        capture_output=True, text=True, env=env, cwd=isolated_workdir,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "mlpipe-shop v1 promoted to champion" in done.stdout
    assert "mlpipe.train: epoch 1/5" in done.stderr, "training progress is visible"
    versions = MlflowClient().search_model_versions("name='mlpipe-shop'")
    assert [str(v.version) for v in versions] == ["1"]
    metrics = dict(re.findall(r"^  (test_\w+)\s+([\d.]+)$", done.stdout, flags=re.M))
    assert float(metrics["test_accuracy"]) >= 0.75, done.stdout
