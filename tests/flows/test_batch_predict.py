"""Batch predictions equal the registered pyfunc's, in chunks, with quarantine and a record."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from palmerpenguins import load_penguins

from mlpipe.cli import main
from tests.helpers import train_into, use_store

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]

NAME = "mlpipe-penguins"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, prefect_harness: None) -> Path:
    folder = tmp_path_factory.mktemp("store")
    train = {"max_epochs": 20, "hidden_layers": [32], "learning_rate": 0.01}
    train_into(folder, [{"dataset": {"source": "penguins"}, "train": train}])
    return folder


@pytest.fixture
def trained(store: Path, isolated_workdir: Path) -> Path:
    use_store(store, isolated_workdir)
    assert str(MlflowClient().get_model_version_by_alias(NAME, "champion").version) == "1"
    raw = load_penguins().drop(columns=["species"])
    raw.loc[5, "island"] = "Atlantis"  # one row the suite quarantines
    path = isolated_workdir / "raw.csv"
    raw.to_csv(path, index=False)
    return path


def pyfunc_in_fresh_process(rows_csv: Path, workdir: Path) -> pd.DataFrame:
    (workdir / "elsewhere").mkdir(exist_ok=True)
    code = (
        "import sys, mlflow, pandas as pd\n"
        f"rows = pd.read_csv({str(rows_csv)!r})\n"
        f"out = mlflow.pyfunc.load_model('models:/{NAME}@champion').predict(rows)\n"
        "print(out.to_json(orient='split', double_precision=15))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=workdir / "elsewhere")  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return pd.read_json(io.StringIO(done.stdout.strip().splitlines()[-1]), orient="split")


def test_cli_predictions_equal_the_champion_pyfunc(trained: Path, isolated_workdir: Path, capsys):
    out = isolated_workdir / "predictions.csv"
    code = main(["predict", "--model", NAME, "--input", str(trained), "--output", str(out),
                 "--chunk-rows", "50"])  # fmt: skip
    assert code == 0
    assert "343 of 344 rows predicted" in capsys.readouterr().out
    ours = pd.read_csv(out)
    assert set(ours["model_version"]) == {1} and ours["model_run_id"].nunique() == 1

    good_rows = pd.read_csv(trained).drop(index=5).reset_index(drop=True)
    good_csv = isolated_workdir / "good.csv"
    good_rows.to_csv(good_csv, index=False)
    reference = pyfunc_in_fresh_process(good_csv, isolated_workdir)
    assert (ours["prediction"] == reference["prediction"]).all()
    proba = [c for c in reference.columns if c.startswith("proba_")]
    # The network computes in float32, whose matrix products vary with the batch size in the
    # last bits: probabilities agree to float32 precision, labels exactly.
    np.testing.assert_allclose(ours[proba].to_numpy(), reference[proba].to_numpy(), atol=1e-6)

    quarantine = pd.read_parquet(isolated_workdir / "predictions.quarantine.parquet")
    assert quarantine["island"].tolist() == ["Atlantis"]

    client = MlflowClient()
    batch = client.search_runs([client.get_experiment_by_name("mlpipe-batch").experiment_id])
    assert len(batch) == 1 and batch[0].info.status == "FINISHED"
    assert batch[0].data.metrics["rows/predicted"] == 343
    assert batch[0].data.tags["mlpipe.model.version"] == "1"
    assert batch[0].inputs.dataset_inputs, "the input dataset is recorded"


def test_chunk_size_and_format_do_not_change_predictions(trained: Path, isolated_workdir: Path):
    assert main(["predict", "--model", NAME, "--input", str(trained), "--output", "a.parquet",
                 "--chunk-rows", "7"]) == 0  # fmt: skip
    assert main(["predict", "--model", NAME, "--input", str(trained), "--output", "b.csv"]) == 0
    a, b = pd.read_parquet("a.parquet"), pd.read_csv("b.csv")
    assert len(a) == len(b) == 343
    assert (a["prediction"] == b["prediction"]).all()
    np.testing.assert_allclose(a["proba_Adelie"], b["proba_Adelie"], atol=1e-6)  # float32


def test_chunk_progress_has_the_total_rows_of_a_parquet_input(
    trained: Path, isolated_workdir: Path, capsys, monkeypatch: pytest.MonkeyPatch
):
    pd.read_csv(trained).to_parquet("in.parquet")
    monkeypatch.setattr("mlpipe.io.progress.PROGRESS_SECONDS", 0.0)  # a line for every chunk
    assert main(["predict", "--model", NAME, "--input", "in.parquet", "--output", "c.csv",
                 "--chunk-rows", "200"]) == 0  # fmt: skip
    lines = [x for x in capsys.readouterr().err.splitlines() if "mlpipe.predict: chunk" in x]
    assert len(lines) == 2, lines
    # (One row of the file fails validation: quarantined, not predicted.)
    assert re.search(r"chunk 1: 200 of 344 rows read, \d+ predicted \([\d,]+ rows/s, about "
                     r"\d+ s left\)$", lines[0]), lines  # fmt: skip
    assert "chunk 2: 344 of 344 rows read, 343 predicted" in lines[1]
    # An empty Parquet input: one line, not a crash.
    pd.read_csv(trained).iloc[:0].to_parquet("empty.parquet")
    assert main(["predict", "--model", NAME, "--input", "empty.parquet", "--output", "e.csv"]) == 1
    assert capsys.readouterr().err.strip().endswith("has no rows: empty.parquet")
    assert main(["predict", "--model", NAME, "--input", "in.parquet", "--output", "e.csv",
                 "--chunk-rows", "99999999999999999999"]) == 1  # fmt: skip
    assert "--chunk-rows must be between 1 and 100,000,000" in capsys.readouterr().err


def test_scoring_on_a_dask_cluster_writes_what_scoring_here_writes(
    trained: Path, isolated_workdir: Path
):
    import socket

    from mlpipe.io.engine import _open
    from mlpipe.io.processes import owner

    # Staging folders of a killed batch to the same output are removed; a live one is not.
    dead, alive = Path(".there.csv.mlpipe-0dead000"), Path(".there.csv.mlpipe-a11ve000")
    for folder, identity in ((dead, f"{socket.gethostname()}:999999999:1"), (alive, owner())):
        folder.mkdir()
        (folder / "owner").write_text(identity)
    args = ["predict", "--model", NAME, "--input", str(trained), "--chunk-rows", "40"]
    assert main([*args, "--output", "here.csv"]) == 0
    assert main([*args, "--output", "there.csv", "--engine", "dask", "--workers", "2"]) == 0
    assert not dead.exists() and alive.exists()
    shutil.rmtree(alive)
    pd.testing.assert_frame_equal(pd.read_csv("here.csv"), pd.read_csv("there.csv"))
    quarantined = [pd.read_parquet(f"{n}.quarantine.parquet") for n in ("here", "there")]
    assert quarantined[1]["island"].tolist() == ["Atlantis"]
    pd.testing.assert_frame_equal(*quarantined)
    assert not [p.name for p in isolated_workdir.iterdir() if p.name.startswith(".")]
    assert not _open, "the local cluster is stopped with the batch"


def test_bad_batch_inputs(trained: Path, isolated_workdir: Path, capsys):
    assert main(["predict", "--model", "nope", "--input", str(trained), "--output", "x.csv"]) == 1
    assert "model 'nope' is not registered" in capsys.readouterr().err
    assert main(["predict", "--model", NAME, "--input", "missing.csv", "--output", "x.csv"]) == 1
    assert "input file not found" in capsys.readouterr().err
    broken = isolated_workdir / "broken.csv"
    pd.read_csv(trained).drop(columns=["bill_length_mm"]).to_csv(broken, index=False)
    assert main(["predict", "--model", NAME, "--input", str(broken), "--output", "x.csv"]) == 1
    assert "bill_length_mm" in capsys.readouterr().err
    assert not Path("x.csv").exists(), "nothing half-written"
    dask = ["--engine", "dask", "--workers", "2"]
    assert main(["predict", "--model", NAME, "--input", str(broken), "--output", "x.csv",
                 *dask]) == 1  # fmt: skip
    err = capsys.readouterr().err
    assert "bill_length_mm" in err, "a worker's error comes back as itself"
    assert "Compute Failed" not in err and "Traceback" not in err, err
    assert not [p.name for p in isolated_workdir.iterdir() if p.name.startswith((".", "x"))]

    # A bad value in the third chunk only: the same one line, naming that chunk, either way.
    odd = pd.read_csv(trained)
    odd["body_mass_g"] = odd["body_mass_g"].astype(object)
    odd.loc[90, "body_mass_g"] = "heavy"
    odd.to_csv("odd.csv", index=False)
    lines = []
    for engine in ([], dask):
        assert main(["predict", "--model", NAME, "--input", "odd.csv", "--output", "y.csv",
                     "--chunk-rows", "40", *engine]) == 1  # fmt: skip
        lines.append(capsys.readouterr().err.strip().splitlines()[-1])
    assert lines[0] == lines[1] and "input chunk 3 " in lines[0], lines

    args = ["predict", "--model", NAME, "--input", str(trained), "--output", "x.csv"]
    assert main([*args, "--address", "tcp://127.0.0.1:8786"]) == 1
    assert "--address needs --engine dask" in capsys.readouterr().err
    assert main([*args, "--engine", "dask", "--address", "http://user:pw@host"]) == 1
    assert "is not a Dask scheduler address" in capsys.readouterr().err
    assert main([*args, "--engine", "dask", "--address", "tcp://127.0.0.1:1"]) == 1
    assert "Dask scheduler tcp://127.0.0.1:1 (--address)" in capsys.readouterr().err
    assert main([*args, "--engine", "dask", "--workers", "0"]) == 1
    assert "--workers: " in capsys.readouterr().err


@pytest.mark.integration
def test_serve_answers_a_post_with_what_predict_writes(
    trained: Path, isolated_workdir: Path, capsys: pytest.CaptureFixture[str]
):
    import json
    import os
    import signal
    import socket
    import urllib.request

    from tests.integration.stack import free_port, start, stop, wait_for

    rows = pd.read_csv(trained).drop(index=5).head(40)  # row 5 is quarantined by predict
    assert rows.isna().any().any(), "missing values go through the endpoint too"
    rows.to_csv("rows.csv", index=False)
    assert main(["predict", "--model", NAME, "--input", "rows.csv", "--output", "p.csv"]) == 0
    expected = pd.read_csv("p.csv")

    with socket.socket() as held:  # a taken port: one line before anything starts
        held.bind(("127.0.0.1", 0))
        held.listen()
        taken = str(held.getsockname()[1])
        assert main(["serve", "--model", NAME, "--port", taken]) == 1
    assert f"cannot serve on 127.0.0.1:{taken}: the port is already in use" in (
        capsys.readouterr().err
    )

    port = free_port()
    env = dict(os.environ)
    proc = start([sys.executable, "-m", "mlpipe", "serve", "--model", NAME, "--port", str(port)],
                 env, isolated_workdir / "serve.log")  # fmt: skip

    def answer(path: str, body: bytes | None = None) -> bytes | None:
        request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body,
                                         headers={"Content-Type": "application/json"})  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return bytes(response.read())
        except OSError:
            return None

    try:
        assert wait_for(lambda: answer("/ping") is not None, timeout=120, every=1), (
            isolated_workdir / "serve.log"
        ).read_text()[-2000:]
        split = json.loads(rows.to_json(orient="split", index=False))
        body = json.dumps({"dataframe_split": split}).encode()
        served = pd.DataFrame(json.loads(answer("/invocations", body) or b"{}")["predictions"])
        assert (served["prediction"] == expected["prediction"]).all()
        proba = [c for c in served.columns if c.startswith("proba_")]
        assert proba and proba == [c for c in expected.columns if c.startswith("proba_")]
        np.testing.assert_allclose(served[proba], expected[proba], atol=1e-6)  # float32
        none = json.dumps({"dataframe_split": {**split, "data": []}}).encode()
        assert json.loads(answer("/invocations", none) or b"{}") == {"predictions": []}
        assert (
            f"serving {NAME} v1 on http://127.0.0.1:{port}/invocations"
            in (isolated_workdir / "serve.log").read_text()
        )

        os.kill(proc.pid, signal.SIGTERM)  # mlpipe only, not its process group
        proc.wait(timeout=30)
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", port)) != 0, "the server stopped with mlpipe"
    finally:
        stop(proc)
