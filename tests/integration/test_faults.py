"""kill -9 and SIGTERM mid-run, and a tracking server that dies: nothing stuck or leaked.

These run the real `mlpipe` command without PREFECT_API_URL, so each run starts its own
temporary Prefect server (the one that used to outlive a killed run).
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

from mlpipe.servers import mlflow_command, wait_healthy
from tests.integration.procs import descendants, launch, wait_for_text, wait_gone
from tests.integration.stack import free_port, start, stop

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PENGUINS = ["train", "--dataset", "penguins", "--set", "train.learning_rate=0.01",
            "--set", "train.hidden_layers=[16]", "--set", "promotion.resamples=300"]  # fmt: skip
LONG = ["--set", "train.max_epochs=400", "--set", "train.patience=400"]


def prefect_state(prefect_home: Path, flow_run_id: str) -> str:
    """A flow run's state type, read from the temporary servers' shared database."""
    with sqlite3.connect(prefect_home / "prefect.db") as db:
        row = db.execute("select state_type from flow_run where id = ?", (flow_run_id,)).fetchone()
    assert row is not None, flow_run_id
    return str(row[0])


def test_kill_and_sigterm_leave_nothing_running_and_the_next_run_recovers(tmp_path: Path):
    home = tmp_path / "prefect-home"
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env.update(MLFLOW_TRACKING_URI=uri, PREFECT_HOME=str(home))
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)

    # Given a run killed with SIGKILL right after registering its version (smoke test running).
    killed = launch([*PENGUINS, "--set", "train.max_epochs=15"], env, tmp_path, "killed")
    wait_for_text(tmp_path / "killed.err", r"registered mlpipe-penguins v1 \(pending", 240, killed)
    children = descendants(killed.pid)
    assert children, "the temporary Prefect server and the smoke test run below mlpipe"
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    # Then nothing it started keeps running (temporary server, smoke-test interpreter).
    assert wait_gone(children, 20) == set(), "orphans of a killed run"
    run = client.search_runs(["1"], "tags.`mlpipe.model.version` = '1'")[0]
    assert run.info.status == "RUNNING", "only the next flow can tell it was killed"
    killed_flow_run = run.data.tags["mlpipe.prefect.flow_run_id"]
    assert prefect_state(home, killed_flow_run) == "RUNNING"

    # When the next run starts (and is stopped with SIGTERM while training)...
    stopped = launch([*PENGUINS, *LONG], env, tmp_path, "stopped")
    wait_for_text(tmp_path / "stopped.err", r"epoch 1/400", 240, stopped)
    children = descendants(stopped.pid)
    started = time.monotonic()
    stopped.send_signal(signal.SIGTERM)
    assert stopped.wait(timeout=60) == 143
    # ...its recovery step first closed what the killed run left open,
    err_text = (tmp_path / "stopped.err").read_text()
    assert f"recovered run {run.info.run_id}" in err_text
    recovered = client.get_run(run.info.run_id)
    assert recovered.info.status == "FAILED" and recovered.data.tags["mlpipe.recovered"] == "true"
    assert "abandoned" in recovered.data.tags["mlpipe.error"]
    v1 = client.get_model_version("mlpipe-penguins", "1")
    assert (v1.tags["mlpipe.decision"], v1.tags["mlpipe.eligible"]) == ("failed", "false")
    assert prefect_state(home, killed_flow_run) == "CRASHED"
    assert not list((tmp_path / "runs").glob(f"*-{run.info.run_id[:8]}")), "run dir removed"
    # ...and SIGTERM ends it within seconds with one line, its own run and flow run closed.
    assert time.monotonic() - started < 30
    err = err_text.strip().splitlines()
    assert err[-1].startswith("mlpipe: error: terminated (SIGTERM)"), err[-3:]
    assert not any("Traceback" in line for line in err)
    assert wait_gone(children, 20) == set()
    terminated = client.search_runs(["1"], "attributes.status = 'FAILED'")
    terminated = [r for r in terminated if r.info.run_id != run.info.run_id]
    assert len(terminated) == 1 and "Terminat" in terminated[0].data.tags["mlpipe.error"]
    assert prefect_state(home, terminated[0].data.tags["mlpipe.prefect.flow_run_id"]) == "CRASHED"
    assert list((tmp_path / "runs").iterdir()) == [], "no run directory left behind"

    # Then a run that is left alone finishes and takes champion.
    command = [sys.executable, "-m", "mlpipe", *PENGUINS, "--set", "train.max_epochs=15"]
    done = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "mlpipe-penguins v2 promoted" in done.stdout

    # And the never-judged version cannot be made champion by hand.
    refused = subprocess.run([sys.executable, "-m", "mlpipe", "rollback",
                              "--model", "mlpipe-penguins", "--to", "1"],
                             env=env, cwd=tmp_path, capture_output=True, text=True)  # fmt: skip
    assert refused.returncode == 1
    assert "v1 is not eligible for champion (abandoned" in refused.stderr
    listing = subprocess.run([sys.executable, "-m", "mlpipe", "models", "--model",
                              "mlpipe-penguins"], env=env, cwd=tmp_path, capture_output=True,
                             text=True).stdout  # fmt: skip
    assert "failed (abandoned" in listing


@pytest.mark.usefixtures("prefect_harness")
def test_a_tracking_server_that_dies_ends_the_run_in_one_line_within_the_retry_budget(
    tmp_path: Path,
):
    import prefect.settings

    port = free_port()
    cmd, server_env = mlflow_command("127.0.0.1", port, f"sqlite:///{tmp_path / 'server.db'}",
                                     str(tmp_path / "artifacts"), None)  # fmt: skip
    server = start(cmd, server_env, tmp_path / "server.log")
    try:
        assert wait_healthy(f"http://127.0.0.1:{port}/health", 120)
        env = {**os.environ, "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{port}",
               "PREFECT_API_URL": str(prefect.settings.PREFECT_API_URL.value())}  # fmt: skip
        run = launch([*PENGUINS, *LONG, "--set", "tracking.retry_seconds=15"], env, tmp_path,
                     "outage")  # fmt: skip
        wait_for_text(tmp_path / "outage.err", r"epoch 1/400", 240, run)
    finally:
        stop(server)
    died = time.monotonic()
    assert run.wait(timeout=120) == 1
    assert time.monotonic() - died < 45, "bounded retries, not minutes"
    err = (tmp_path / "outage.err").read_text().strip().splitlines()
    assert err[-1].startswith("mlpipe: error: tracking server http://127.0.0.1:"), err[-3:]
    assert "is unreachable" in err[-1]
    assert not any("Traceback" in line for line in err), "one line, no chained tracebacks"


def test_kill_during_first_use_store_creation_never_leaves_a_broken_store(tmp_path: Path):
    """MLflow schema setup is dozens of migrations: a kill inside them must not break the store."""
    db = tmp_path / "store" / "mlflow.db"
    code = f"from mlpipe.io.tracking import configure; configure('sqlite:///{db}')"
    for delay in (0.0, 0.3, 0.8):
        proc = subprocess.Popen([sys.executable, "-c", code], cwd=tmp_path)
        deadline = time.monotonic() + 120
        while not list(db.parent.glob(".mlflow.db.creating-*")) and proc.poll() is None:
            assert time.monotonic() < deadline, "store creation never started"
            time.sleep(0.01)
        time.sleep(delay)
        proc.kill()
        proc.wait()
        assert not db.exists(), f"killed {delay}s into creation, a half-made store was left"
    # The next user gets a working store, and the killed attempts' files are gone.
    from mlpipe.io import tracking

    old = os.environ.pop("MLFLOW_TRACKING_URI", None)
    try:
        tracking.configure(f"sqlite:///{db}")
        assert MlflowClient().create_experiment("after-kills")
    finally:
        if old is not None:
            os.environ["MLFLOW_TRACKING_URI"] = old
    assert sorted(p.name for p in db.parent.iterdir()) == ["mlflow.db", "mlflow.db.lock"]


def test_a_damaged_store_is_one_line_naming_it(tmp_path: Path):
    db = tmp_path / "mlflow.db"
    db.write_bytes(b"this is not a database" * 100)
    result = subprocess.run(
        [sys.executable, "-m", "mlpipe", "models"], capture_output=True, text=True, cwd=tmp_path,
        env={**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{db}"}, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"mlpipe: error: cannot open the MLflow store {db}: file is not a database"
    ], result.stderr
