"""Promotion on evidence, alias history and rollback, through the real flow and CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow import MlflowClient

from flows.training import training
from mlpipe.cli import main
from mlpipe.config import build_config
from mlpipe.io import tracking

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]

NAME = "mlpipe-penguins"


def run(epochs: int, hidden: list[int], **train: object):
    config = build_config(
        {
            "dataset": {"source": "penguins"},
            # No baseline here: this test is about challenger vs champion.
            "train": {"max_epochs": epochs, "hidden_layers": hidden, "baseline": "none",
                      **train},
        }
    )  # fmt: skip
    return training(config)


def test_promotion_on_evidence_history_and_rollback(isolated_workdir: Path, capsys):
    client = MlflowClient()
    weak = run(2, [4], learning_rate=0.01)
    assert weak.promoted and weak.version == "1", weak.reason

    strong = run(30, [64, 32], learning_rate=0.01)
    assert strong.promoted, strong.reason
    v2 = client.get_model_version(NAME, "2")
    assert v2.tags["mlpipe.decision"] == "promoted"
    assert v2.tags["mlpipe.decision.compared_with"] == "1"
    assert v2.tags["mlpipe.decision.test"].startswith("paired bootstrap")
    low, high = (float(x) for x in v2.tags["mlpipe.decision.ci"].strip("[]").split(","))
    assert 0 < low <= high, "the recorded interval excludes zero"

    worse = run(2, [4], learning_rate=0.01)
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
    assert [m["compared_with"] for m in history] == [None, "1", None], "each move names it"
    assert history[1]["run_id"] == strong.run_id
    assert history[2]["reason"] == "rollback: v2 misbehaves in production"

    assert main(["models", "--model", NAME]) == 0
    listing = capsys.readouterr().out
    assert "champion: v2 -> v1  (rollback: v2 misbehaves in production)" in listing
    assert "champion: v1 -> v2, compared with v1" in listing
    assert main(["rollback", "--model", NAME, "--to", "9"]) == 1
    assert "has no version 9" in capsys.readouterr().err


def test_unsound_first_versions_are_registered_not_promoted(isolated_workdir: Path, capsys):
    constant = build_config(
        {"dataset": {"source": "penguins"},
         "train": {"max_epochs": 1, "hidden_layers": [1], "learning_rate": 1e-6}}
    )  # fmt: skip
    result = training(constant)
    assert not result.promoted and not result.eligible, result.reason
    assert "trivial predictor" in result.reason or "baseline" in result.reason
    assert tracking.champion(NAME) is None
    v1 = MlflowClient().get_model_version(NAME, "1")
    assert v1.tags["mlpipe.eligible"] == "false"

    good = build_config(
        {"dataset": {"source": "penguins"},
         "train": {"max_epochs": 1, "hidden_layers": [4], "baseline": "none"},
         "promotion": {"min_metrics": {"accuracy": 0.99}}}
    )  # fmt: skip
    result = training(good)
    assert not result.promoted and "accuracy" in result.reason and "< 0.99" in result.reason
    assert tracking.champion(NAME) is None

    # An ineligible version cannot be made champion by hand without --force and --reason.
    capsys.readouterr()
    assert main(["rollback", "--model", NAME, "--to", "1"]) == 1
    err = capsys.readouterr().err
    assert "has no champion to roll back" in err


def test_a_challenger_that_predicts_something_else_never_takes_champion(
    isolated_workdir: Path,
):
    from palmerpenguins import load_penguins

    birds = load_penguins()

    def train_on(frame, target: str = "species"):
        path = isolated_workdir / f"birds_{len(list(isolated_workdir.glob('birds_*.csv')))}.csv"
        frame.to_csv(path, index=False)
        config = {
            "dataset": {"source": str(path), "name": "birds", "target": target},
            "tracking": {"model_name": "birds"},
            "train": {"max_epochs": 8, "hidden_layers": [8], "learning_rate": 0.01,
                      "baseline": "none"},
            "promotion": {"resamples": 200},
        }  # fmt: skip
        return training(build_config(config))

    first = train_on(birds)
    assert first.promoted, first.reason
    shouting = birds.assign(species=birds["species"].str.upper())
    other_target = birds.dropna(subset=["sex"])
    no_island = birds.drop(columns="island")
    outcomes = [
        (train_on(shouting), "this version predicts [ADELIE, CHINSTRAP, GENTOO]"),
        (
            train_on(other_target, target="sex"),
            "it predicts 'species', this version predicts 'sex'",
        ),
        (train_on(no_island), "its feature columns island are not in this version's data"),
    ]
    client = MlflowClient()
    for result, why in outcomes:
        assert not result.promoted, result.reason
        assert f"not comparable with champion v{first.version}" in result.reason, result.reason
        assert why in result.reason, result.reason
        assert f"mlpipe rollback --model birds --to {result.version})" in result.reason
        tags = client.get_model_version("birds", result.version).tags
        assert tags["mlpipe.decision"] == "not promoted"
    assert tracking.champion("birds").version == first.version
