"""`mlpipe reproduce`: a version trained again from what it recorded gives the same metrics."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow import MlflowClient
from palmerpenguins import load_penguins

from mlpipe.cli import main

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]

FAST = ["--set", "train.max_epochs=8", "--set", "train.hidden_layers=[16]",
        "--set", "train.learning_rate=0.01"]  # fmt: skip


def code_at(commit: str, dirty: bool = False):
    def git_info(path):
        return {"mlpipe.git.commit": commit, "mlpipe.git.dirty": str(dirty).lower()}

    return git_info


def test_reproduce_matches_and_refuses_other_code_or_data(
    isolated_workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys
):
    # The code as git sees it, fixed: the test must not depend on this checkout's state.
    monkeypatch.setattr("mlpipe.io.tracking.git_info", code_at("a" * 40))
    data = isolated_workdir / "penguins.csv"
    load_penguins().to_csv(data, index=False)
    assert main(["train", "--data", str(data), "--target", "species", *FAST]) == 0
    capsys.readouterr()

    # When the version is reproduced: the same metrics, exactly; the original is untouched.
    assert main(["reproduce", "mlpipe-penguins", "1"]) == 0
    out = capsys.readouterr().out
    assert "reproduced mlpipe-penguins v1 as mlpipe-penguins-reproduce v1" in out, out
    assert out.rstrip().endswith("the metrics match the recorded ones exactly")
    lines = [line for line in out.splitlines() if "test_accuracy" in line]
    assert lines and lines[0].rstrip().endswith("same"), lines
    client = MlflowClient()
    assert len(client.search_model_versions("name='mlpipe-penguins'")) == 1
    assert str(client.get_model_version_by_alias("mlpipe-penguins", "champion").version) == "1"

    # Other code, or other data: refused before any training, with the reason.
    monkeypatch.setattr("mlpipe.io.tracking.git_info", code_at("b" * 40))
    assert main(["reproduce", "mlpipe-penguins", "1"]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == (
        f"mlpipe: error: cannot reproduce exactly: it was trained at commit {'a' * 12}, this "
        f"checkout is at {'b' * 12} (--force runs it anyway)"
    )
    monkeypatch.setattr("mlpipe.io.tracking.git_info", code_at("a" * 40))
    changed = isolated_workdir / "changed.csv"
    load_penguins().iloc[:-1].to_csv(changed, index=False)
    assert main(["reproduce", "mlpipe-penguins", "1", "--data", str(changed)]) == 1
    assert "the data's digest is " in capsys.readouterr().err
    assert len(client.search_model_versions("name='mlpipe-penguins-reproduce'")) == 1
    # The two finished runs keep their folders; the refused ones left nothing.
    assert len(list((isolated_workdir / "runs").iterdir())) == 2

    # A version recorded before metrics were grouped (flat names) is still compared; one with
    # a metric it never recorded is not called a match.
    from mlpipe import reproduce

    found = reproduce.recorded("mlpipe-penguins", "1")
    flat = {k.replace("/", "_").replace("baseline_", "baseline_test_")
            .replace("trivial_", "trivial_test_"): v for k, v in found.metrics.items()}  # fmt: skip
    old = reproduce.Recorded(**{**found.__dict__, "metrics": flat})
    now = {"test_accuracy": flat["test_accuracy"], "test_new_metric": 1.0}
    assert reproduce.compare(old, now) == [
        ("test_accuracy", flat["test_accuracy"], flat["test_accuracy"]),
        ("test_new_metric", None, 1.0),
    ]
    # The recorded data moved away: said so, with what to do.
    data.rename(isolated_workdir / "moved.csv")
    assert main(["reproduce", "mlpipe-penguins", "1"]) == 1
    assert (
        capsys.readouterr()
        .err.strip()
        .endswith(f"the recorded data {data} is not found: pass --data PATH")
    )

    # Unknown models and versions: one line.
    assert main(["reproduce", "nope", "1"]) == 1
    assert "model 'nope' is not registered" in capsys.readouterr().err
    assert main(["reproduce", "mlpipe-penguins", "7"]) == 1
    assert "mlpipe: error: " in capsys.readouterr().err
