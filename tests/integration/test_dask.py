"""The Dask engine: a local cluster, and a real scheduler with two workers started by Dask's
own command-line tools on free loopback ports. Results must equal the local engine's."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import cloudpickle
import pandas as pd
import pytest
from mlflow import MlflowClient

from flows.training import training
from mlpipe.cli import main
from mlpipe.config import ExecutionConfig, build_config
from mlpipe.errors import DataError, TrainingError
from mlpipe.io import engine
from mlpipe.io.engine import EngineError, engine_for
from mlpipe.io.tables import PartitionWriter, iter_partitions
from tests.helpers import make_mixed_frame
from tests.integration import dask_fns
from tests.integration.dask_fns import dies, doubled, gang_member, modules, rows_and_sum
from tests.integration.stack import free_port, start, stop

pytestmark = [pytest.mark.integration, pytest.mark.slow]
# `client.run` ships these by value to workers started outside (they cannot import tests/);
# mapped ones go by reference, as mlpipe's own partition functions do.
cloudpickle.register_pickle_by_value(dask_fns)
FAST = {"train": {"max_epochs": 8, "hidden_layers": [32, 16], "learning_rate": 0.01}}


def _dataset(folder: Path, parts: int = 4, rows: int = 50) -> Path:
    frame = make_mixed_frame(n=parts * rows)
    with PartitionWriter(folder / "table") as writer:
        for i in range(parts):
            writer.write(frame.iloc[i * rows : (i + 1) * rows])
        return Path(writer.commit())


@pytest.fixture
def local_cluster(tmp_path: Path) -> Iterator[ExecutionConfig]:
    cfg = ExecutionConfig(engine="dask", workers=2)
    yield cfg
    engine.shutdown()


def test_a_local_cluster_maps_partitions_like_the_local_engine(
    tmp_path: Path, local_cluster: ExecutionConfig
):
    table = _dataset(tmp_path)
    dask = engine_for(local_cluster, tmp_path)
    assert dask.name == "dask"
    local = engine_for(ExecutionConfig(), tmp_path)
    assert list(dask.summarise(rows_and_sum, table, "size")) == list(
        local.summarise(rows_and_sum, table, "size")
    )
    outputs = []
    for which in (local, dask):
        with PartitionWriter(tmp_path / f"doubled-{which.name}") as writer:
            assert list(which.rewrite(doubled, table, [writer], "size")) == [50] * 4
            outputs.append(pd.concat(iter_partitions(writer.commit())))
    pd.testing.assert_frame_equal(outputs[0], outputs[1])
    # The work ran in the workers, which never imported Prefect.
    seen = dask.client.run(modules, ["pandas", "prefect"])  # type: ignore[attr-defined]
    assert len(seen) == 2
    assert all(v == {"pandas": True, "prefect": False} for v in seen.values()), seen


def test_a_local_cluster_binds_no_fixed_port(
    tmp_path: Path, local_cluster: ExecutionConfig, recwarn: pytest.WarningsRecorder
):
    with socket.socket() as held:
        with contextlib.suppress(OSError):  # Dask's default HTTP port, as a second run holds it
            held.bind(("127.0.0.1", 8787))
            held.listen()
        engine_for(local_cluster, tmp_path)
    assert not [w for w in recwarn if "8787" in str(w.message)]


def test_a_workers_error_about_the_data_comes_back_as_itself(
    tmp_path: Path, local_cluster: ExecutionConfig
):
    table = _dataset(tmp_path)
    frame = pd.concat(iter_partitions(table), ignore_index=True)
    frame.loc[100:149, "size"] = None  # the third partition
    bad = _dataset_from(frame, tmp_path / "bad")
    dask = engine_for(local_cluster, tmp_path)
    with (
        PartitionWriter(tmp_path / "out") as writer,
        pytest.raises(DataError, match="column size is empty in a partition"),
    ):
        list(dask.rewrite(doubled, bad, [writer], "size"))
    assert not (tmp_path / "out").exists()  # nothing half-written
    assert not list(tmp_path.glob(".out.*"))


def _dataset_from(frame: pd.DataFrame, folder: Path, rows: int = 50) -> Path:
    with PartitionWriter(folder, rows=rows) as writer:
        writer.write(frame)
        return Path(writer.commit())


def test_a_partition_that_keeps_killing_its_worker_fails_the_run_in_one_line(
    tmp_path: Path, local_cluster: ExecutionConfig
):
    table = _dataset(tmp_path, parts=2)
    dask = engine_for(local_cluster, tmp_path)
    with pytest.raises(EngineError, match=r"Dask cluster \(local, 2 workers\): .*"):
        list(dask.summarise(dies, table))
    # The cluster heals: the nannies restarted the workers, and they work again.
    assert len(list(dask.summarise(rows_and_sum, table, "size"))) == 2


def test_a_scheduler_without_workers_is_one_clear_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(engine, "CONNECT_SECONDS", 3)
    port = free_port()
    tool = str(Path(sys.executable).with_name("dask"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    proc = start([tool, "scheduler", "--host", "127.0.0.1", "--port", str(port),
                  "--no-dashboard"], env, tmp_path / "scheduler.log")  # fmt: skip
    try:
        address = f"tcp://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)):
                break
            time.sleep(0.2)
        with pytest.raises(EngineError, match=f"the Dask scheduler {address} has no worker"):
            engine_for(ExecutionConfig(engine="dask", address=address), tmp_path)
    finally:
        stop(proc)


def test_something_that_is_not_a_scheduler_fails_in_bounded_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(engine, "CONNECT_SECONDS", 2)
    with socket.socket() as silent:  # accepts connections, never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        address = f"tcp://127.0.0.1:{silent.getsockname()[1]}"
        started = time.monotonic()
        with pytest.raises(EngineError, match=f"cannot reach the Dask scheduler {address}"):
            engine_for(ExecutionConfig(engine="dask", address=address), tmp_path)
        assert time.monotonic() - started < 30


def test_train_refuses_an_unreachable_scheduler_before_loading(tmp_path: Path):
    data = tmp_path / "shop.csv"
    make_mixed_frame(n=300).to_csv(data, index=False)
    address = f"tcp://127.0.0.1:{free_port()}"  # nothing listens there
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp_path / 'mlflow.db'}"
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "mlpipe", "train", "--data", str(data), "--target", "label",
         "--set", "execution.engine=dask", "--set", f"execution.address={address}"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and f"cannot reach the Dask scheduler {address}" in lines[0], lines
    assert time.monotonic() - started < 60
    assert not list(tmp_path.glob("runs/2*")), "no run directory was started"


def test_an_unreachable_scheduler_is_one_clear_line(tmp_path: Path):
    address = f"tcp://127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(EngineError, match=f"cannot reach the Dask scheduler {address}"):
        engine_for(ExecutionConfig(engine="dask", address=address), tmp_path)
    assert time.monotonic() - started < engine.CONNECT_SECONDS + 15


def test_workers_that_cannot_see_the_run_directory_are_refused(
    tmp_path: Path, local_cluster: ExecutionConfig
):
    with pytest.raises(EngineError, match=r"cannot see .*runs_dir must be on storage"):
        engine_for(local_cluster, tmp_path / "not-there")


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`dask scheduler` and two `dask worker` processes on free loopback ports."""
    from distributed import Client

    logs = tmp_path_factory.mktemp("dask")
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    tool = str(Path(sys.executable).with_name("dask"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    procs = [
        start([tool, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
              env, logs / "scheduler.log")
    ]  # fmt: skip
    try:
        for i in range(2):
            procs.append(
                start([tool, "worker", address, "--nthreads", "1", "--no-dashboard",
                       "--host", "127.0.0.1", "--death-timeout", "60"], env, logs / f"w{i}.log")
            )  # fmt: skip
        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=120)
        yield address
    finally:
        for proc in reversed(procs):
            stop(proc)
        for proc in procs:
            assert proc.poll() is not None, "a Dask process outlived the test"


@pytest.mark.usefixtures("prefect_harness")
def test_training_on_a_scheduler_and_two_workers_matches_the_local_engine(
    isolated_workdir: Path, scheduler: str
):
    from distributed import Client

    path = isolated_workdir / "shop.csv"
    frame = make_mixed_frame(n=1500)
    # Rows repeated in later partitions (new ids: an id is not a feature, rows still repeat).
    again = frame.iloc[:120].assign(id=[f"again-{i}" for i in range(120)])
    pd.concat([frame, again], ignore_index=True).to_csv(path, index=False)
    # No dropout: the masks are the one thing distributed training draws differently.
    train = {**FAST["train"], "dropout": 0.0}
    base = {
        "dataset": {"source": str(path), "target": "label", "partition_rows": 250},
        "train": train,
    }
    cluster = ["execution.engine=dask", f"execution.address={scheduler}"]
    local = training(build_config(base))
    on_cluster = training(build_config(base, overrides=cluster))
    assert on_cluster.version == "2"
    # The same features, hence the same network and metrics.
    for name in ("features_train", "features_val"):
        pd.testing.assert_frame_equal(
            pd.concat(iter_partitions(Path(local.run_dir) / name), ignore_index=True),
            pd.concat(iter_partitions(Path(on_cluster.run_dir) / name), ignore_index=True),
        )
    assert on_cluster.metrics == pytest.approx(local.metrics, rel=1e-9, abs=1e-12)
    client = MlflowClient()
    data = [client.get_run(r.run_id).data for r in (local, on_cluster)]
    assert data[1].params["execution.engine"] == "dask"
    accounting = {k: v for k, v in data[0].metrics.items() if k.startswith(("clean/", "rows/"))}
    assert accounting["clean/dropped_duplicate"] >= 120
    assert {k: data[1].metrics[k] for k in accounting} == accounting

    # Batch prediction on the cluster: the same output as here (quarantine: in
    # tests/flows/test_batch_predict.py, with a suite).
    raw = make_mixed_frame(n=430, seed=9).drop(columns=["label"])
    raw.to_csv(isolated_workdir / "raw.csv", index=False)
    predict = ["predict", "--model", local.model_name, "--input", "raw.csv", "--chunk-rows", "100"]
    assert main([*predict, "--output", "here.parquet"]) == 0
    assert main([*predict, "--output", "there.parquet", "--engine", "dask",
                 "--address", scheduler]) == 0  # fmt: skip
    here, there = pd.read_parquet("here.parquet"), pd.read_parquet("there.parquet")
    assert len(here) == 430
    pd.testing.assert_frame_equal(here, there)
    assert sorted(p.name for p in isolated_workdir.iterdir() if p.name.startswith(".")) == []

    # DistributedDataParallel: one rank on each worker; the same training as one process.
    ranks = training(build_config(base, overrides=[*cluster, "train.workers=2"]))
    assert ranks.metrics == pytest.approx(local.metrics, rel=1e-4, abs=1e-4)
    history = client.get_metric_history(ranks.run_id, "val/loss")
    epochs = int(client.get_run(ranks.run_id).data.metrics["train/epochs_run"])
    assert [m.step for m in history] == list(range(1, epochs + 1))
    assert [m.value for m in history] == pytest.approx(
        [m.value for m in client.get_metric_history(local.run_id, "val/loss")], rel=1e-4
    )
    with Client(scheduler, timeout=30) as dask_client:
        seen = dask_client.run(modules, ["mlpipe.learn.train", "torch.distributed", "prefect"])
    assert len(seen) == 2
    assert all(v["mlpipe.learn.train"] for v in seen.values()), seen  # they did the work
    assert all(v["torch.distributed"] for v in seen.values()), seen  # a rank each
    assert not any(v["prefect"] for v in seen.values()), seen


def test_training_ranks_on_a_cluster_need_a_worker_each(
    tmp_path: Path, local_cluster: ExecutionConfig
):
    dask = engine_for(local_cluster, tmp_path)
    assert dask.gang(gang_member, 2, -1, "none") == [0, 1]
    with pytest.raises(TrainingError, match="rank 1 refused"):
        dask.gang(gang_member, 2, 1, "raise")
    with pytest.raises(EngineError, match=r"3 training ranks need 3 Dask workers .* has 2$"):
        dask.gang(gang_member, 3, -1, "none")


def test_a_rank_whose_worker_dies_fails_the_run_in_one_line(
    tmp_path: Path, local_cluster: ExecutionConfig
):
    dask = engine_for(local_cluster, tmp_path)
    with pytest.raises(
        EngineError, match=r"^Dask cluster .*: the worker of training rank 1 of 2 left"
    ):
        dask.gang(gang_member, 2, 1, "die")


def test_dask_tools_are_installed():
    done = subprocess.run(
        [str(Path(sys.executable).with_name("dask")), "--version"], capture_output=True, text=True
    )
    assert done.returncode == 0 and "2026.8.0" in done.stdout + done.stderr


def test_mlpipe_server_dask_serves_workers_and_stops_with_nothing_left(tmp_path: Path):
    from distributed import Client

    from tests.integration.procs import descendants, launch, wait_for_text, wait_gone

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    proc = launch(["server", "dask", "--port", str(port), "--workers", "2"], env, tmp_path, "dask")
    try:
        wait_for_text(tmp_path / "dask.out", r"Dask scheduler on tcp://127\.0\.0\.1:", 60, proc)
        with Client(f"tcp://127.0.0.1:{port}", timeout=30) as client:
            client.wait_for_workers(2, timeout=120)
            assert len(client.scheduler_info()["workers"]) == 2
        children = descendants(proc.pid)
        assert len(children) >= 3  # the scheduler, the worker launcher, its workers
        listening = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True).stdout
        ours = [
            line.split()[3]
            for line in listening.splitlines()
            if any(f"pid={pid}," in line for pid in children)
        ]
        assert ours and all(a.startswith("127.0.0.1:") for a in ours), ours  # nothing on 0.0.0.0
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        assert not wait_gone(children, 30), "Dask processes outlived `mlpipe server dask`"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # --port 0: a free port, and the address printed is the real one.
    proc = launch(["server", "dask", "--port", "0", "--workers", "1"], env, tmp_path, "dask0")
    try:
        wait_for_text(tmp_path / "dask0.out", r"Dask scheduler on tcp://127\.0\.0\.1:\d+", 60, proc)
        printed = re.search(r"tcp://127\.0\.0\.1:(\d+)", (tmp_path / "dask0.out").read_text())
        assert printed and printed.group(1) != "0"
        with Client(f"tcp://127.0.0.1:{printed.group(1)}", timeout=30) as client:
            client.wait_for_workers(1, timeout=120)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    # A taken port: one line, non-zero, nothing started.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "mlpipe", "server", "dask", "--port", str(busy)],
            capture_output=True, text=True, env=env, timeout=120,
        )  # fmt: skip
    assert done.returncode != 0
    assert f"port {busy} on 127.0.0.1 is taken" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_more_ranks_than_workers_is_refused_before_the_data_is_read(
    scheduler: str, isolated_workdir: Path, capsys
):
    base = ["train", "--dataset", "penguins", "--set", "execution.engine=dask"]
    # An existing scheduler: its workers are counted on the connection the run would use.
    assert main([*base, "--set", f"execution.address={scheduler}",
                 "--set", "train.workers=3"]) == 1  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (
        f"mlpipe: error: train.workers=3 ranks need 3 Dask workers (one rank each); "
        f"{scheduler} has 2"
    ), err
    engine.shutdown()
    # A local cluster: its size is in the config, so no cluster is started to find out.
    assert main([*base, "--set", "execution.workers=2", "--set", "train.workers=3"]) == 1
    err = capsys.readouterr().err
    assert "train.workers=3 ranks need 3 Dask workers (one rank each), and the local cluster " \
        "has execution.workers=2" in err  # fmt: skip
    assert "dask: started" not in err
    assert not list(isolated_workdir.glob("runs/*")), "nothing staged"
