"""Promotion on evidence, alias history and rollback, through the real flow and CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow import MlflowClient

from flows.cli import main
from flows.training import training
from tasks.core import tracking
from tasks.core.config import build_config

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]

NAME = "mlpipe-penguins"


def run(epochs: int, hidden: list[int]):
    config = build_config(
        {
            "dataset": {"source": "penguins"},
            "train": {"max_epochs": epochs, "hidden_layers": hidden},
        }
    )
    return training(config)


def test_promotion_on_evidence_history_and_rollback(isolated_workdir: Path, capsys):
    client = MlflowClient()
    weak = run(1, [4])
    assert weak.promoted and weak.version == "1", "a first model with no thresholds is promoted"

    strong = run(40, [64, 32])
    assert strong.promoted, strong.reason
    v2 = client.get_model_version(NAME, "2")
    assert v2.tags["mlpipe.decision"] == "promoted"
    assert v2.tags["mlpipe.decision.test"].startswith("paired bootstrap")
    low, high = (float(x) for x in v2.tags["mlpipe.decision.ci"].strip("[]").split(","))
    assert 0 < low <= high, "the recorded interval excludes zero"

    worse = run(1, [4])
    assert not worse.promoted
    v3 = client.get_model_version(NAME, "3")
    assert v3.tags["mlpipe.decision"] == "not promoted"
    assert "below the margin" in v3.tags["mlpipe.decision.reason"]
    assert str(client.get_model_version_by_alias(NAME, "champion").version) == "2"

    capsys.readouterr()
    assert main(["rollback", "--model", NAME, "--reason", "v2 misbehaves in production"]) == 0
    assert "champion v2 -> v1" in capsys.readouterr().out
    assert str(client.get_model_version_by_alias(NAME, "champion").version) == "1"
    history = tracking.alias_history(NAME)
    assert [(m["from"], m["to"]) for m in history] == [(None, "1"), ("1", "2"), ("2", "1")]
    assert history[1]["run_id"] == strong.run_id
    assert history[2]["reason"] == "rollback: v2 misbehaves in production"

    assert main(["models", "--model", NAME]) == 0
    listing = capsys.readouterr().out
    assert "champion: v2 -> v1  (rollback: v2 misbehaves in production)" in listing
    assert main(["rollback", "--model", NAME, "--to", "9"]) == 1
    assert "has no version 9" in capsys.readouterr().err


def test_first_model_below_absolute_thresholds_is_not_promoted(isolated_workdir: Path):
    config = build_config(
        {"dataset": {"source": "penguins"}, "train": {"max_epochs": 1, "hidden_layers": [4]},
         "promotion": {"min_metrics": {"accuracy": 0.99}}}
    )  # fmt: skip
    result = training(config)
    assert not result.promoted and "fails absolute thresholds" in result.reason
    assert tracking.champion(NAME) is None
