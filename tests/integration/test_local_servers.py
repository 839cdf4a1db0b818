"""Server commands and `make servers` / `make stop`: health, taken ports, signals, ownership."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlpipe.io.processes import owner
from mlpipe.servers import port_free, wait_healthy
from tests.integration.stack import free_port

pytestmark = [pytest.mark.integration]
ROOT = Path(__file__).resolve().parents[2]
MLPIPE = [sys.executable, "-m", "mlpipe"]


def env_without_servers() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_"))}
    return env


def group_gone(pgid: int, timeout: float) -> bool:
    """Whether every process of the session ``pgid`` has exited within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    return False


@pytest.mark.slow
@pytest.mark.parametrize(
    ("command", "health"),
    [
        (["server", "prefect"], "/api/health"),
        (["server", "mlflow"], "/health"),
        (["ui"], "/health"),
    ],
    ids=["server-prefect", "server-mlflow", "ui"],
)
def test_sigterm_stops_the_real_server_and_frees_its_port(tmp_path, command, health):
    port = free_port()
    proc = subprocess.Popen(
        [*MLPIPE, *command, "--port", str(port)], cwd=tmp_path, env=env_without_servers(),
        stdout=(tmp_path / "log").open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        assert wait_healthy(f"http://127.0.0.1:{port}{health}", 120), (tmp_path / "log").read_text()
        # SIGTERM to the mlpipe process only, as `docker stop` or `kill` would send it.
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=40) == 0
        assert group_gone(proc.pid, 15), "a process of the server outlived it"
        assert port_free("127.0.0.1", port)
    finally:
        if proc.poll() is None or not group_gone(proc.pid, 0.1):
            os.killpg(proc.pid, signal.SIGKILL)


def test_make_servers_refuses_a_taken_port_naming_it(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        other = free_port()
        state = tmp_path / "state"
        done = subprocess.run(
            ["make", "-s", "servers", f"PREFECT_PORT={busy}", f"MLFLOW_PORT={other}",
             f"SERVERS_DIR={state}"],
            cwd=ROOT, env=env_without_servers(), capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert done.returncode != 0
    errors = [line for line in done.stderr.splitlines() if line.startswith("mlpipe: error:")]
    assert len(errors) == 1 and f"127.0.0.1:{busy}" in errors[0], done.stderr
    assert "PREFECT_PORT" in errors[0]
    # Nothing was started: the other port is free and no process was recorded.
    assert port_free("127.0.0.1", other)
    assert not list(state.glob("*.json")) if state.exists() else True


@pytest.mark.slow
def test_servers_start_wait_status_and_stop(tmp_path):
    mlflow = free_port()
    state = tmp_path / "state"
    # Port 0: any free port, chosen before the start so the health check and export know it.
    args = ["--prefect-port", "0", "--mlflow-port", str(mlflow), "--state-dir", str(state)]
    env = env_without_servers()

    def servers(*more: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*MLPIPE, "servers", *more], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=200)  # fmt: skip

    started = servers("start", *args)
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        prefect = int(json.loads((state / "prefect.json").read_text())["port"])
        assert prefect != 0
        # When start returns, both answer: it waited for their health.
        for url in (f"http://127.0.0.1:{prefect}/api/health", f"http://127.0.0.1:{mlflow}/health"):
            assert wait_healthy(url, timeout=1), url
        assert (
            f"export PREFECT_API_URL=http://127.0.0.1:{prefect}/api "
            f"MLFLOW_TRACKING_URI=http://127.0.0.1:{mlflow}"
        ) in started.stdout
        status = servers("status", "--state-dir", str(state)).stdout
        assert f"prefect: http://127.0.0.1:{prefect}" in status, status
        again = servers("start", *args)
        assert again.returncode == 0 and again.stdout.count("already running") == 2, again.stdout
        pids = [json.loads((state / f"{n}.json").read_text())["pid"] for n in ("prefect", "mlflow")]
    finally:
        stopped = servers("stop", "--state-dir", str(state))
    assert stopped.returncode == 0
    assert stopped.stdout.count("stopped ") == 2, stopped.stdout
    assert port_free("127.0.0.1", prefect) and port_free("127.0.0.1", mlflow)
    assert all(group_gone(pid, 5) for pid in pids)
    assert not list(state.glob("*.json"))
    assert "prefect: not running" in servers("status", "--state-dir", str(state)).stdout


def test_servers_start_that_times_out_prints_the_log_tail_and_leaves_nothing(tmp_path):
    prefect, mlflow = free_port(), free_port()
    state = tmp_path / "state"
    done = subprocess.run(
        [*MLPIPE, "servers", "start", "--prefect-port", str(prefect), "--mlflow-port",
         str(mlflow), "--state-dir", str(state), "--timeout", "0.5"],
        cwd=tmp_path, env=env_without_servers(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1
    assert "--- last lines of" in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("mlpipe: error: prefect did not come up on 127.0.0.1:"), last
    assert not list(state.glob("*.json"))
    time.sleep(1)
    assert port_free("127.0.0.1", prefect) and port_free("127.0.0.1", mlflow)


def test_stop_signals_only_processes_that_are_still_its_own(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    # A pid that now belongs to another program (its start time differs from the record's).
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        host, pid, _ = owner(bystander.pid).rsplit(":", 2)
        record = {"identity": f"{host}:{pid}:1", "pid": bystander.pid, "url": "x", "port": 1}
        (state / "prefect.json").write_text(json.dumps(record))
        done = subprocess.run([*MLPIPE, "servers", "stop", "--state-dir", str(state)],
                              capture_output=True, text=True, timeout=60)  # fmt: skip
        assert done.returncode == 0
        assert "nothing signalled" in done.stdout, done.stdout
        time.sleep(0.5)
        assert bystander.poll() is None, "make stop killed a process it did not start"
        assert not (state / "prefect.json").exists()
    finally:
        bystander.kill()
        bystander.wait()


def test_servers_need_two_ports_and_a_positive_timeout(tmp_path):
    port = str(free_port())
    for args, message in (
        (["--prefect-port", port, "--mlflow-port", port], f"different ports, not {port}"),
        (["--timeout", "-5"], "--timeout must be a positive number"),
    ):
        done = subprocess.run([*MLPIPE, "servers", "start", "--state-dir", str(tmp_path), *args],
                              capture_output=True, text=True, timeout=60)  # fmt: skip
        assert done.returncode == 1 and message in done.stderr, done.stderr
        assert not list(tmp_path.glob("*.json"))


def test_stop_skips_bad_records_and_goes_on(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    # An edited record (no pid in its identity: pid 0 would signal stop's own process group)
    # and a non-number pid; a good record of a process that is ours follows.
    host = owner().split(":")[0]
    (state / "prefect.json").write_text(json.dumps({"identity": f"{host}:0:5", "url": "x",
                                                    "port": 1}))  # fmt: skip
    leader = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        record = {"identity": owner(leader.pid), "url": "x", "host": "127.0.0.1", "port": 1}
        (state / "mlflow.json").write_text(json.dumps(record))
        done = subprocess.run([*MLPIPE, "servers", "stop", "--state-dir", str(state)],
                              capture_output=True, text=True, timeout=60,
                              start_new_session=True)  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "prefect.json is not a record mlpipe wrote; removed it" in done.stdout
        assert f"stopped mlflow (pid {leader.pid})" in done.stdout
        assert leader.wait(timeout=10) != 0
        assert not list(state.glob("*.json"))
    finally:
        leader.kill()
        leader.wait()


def test_stop_ends_what_a_killed_server_command_left_running(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    # A server command killed with -9 leaves its server (same session) listening.
    leader = subprocess.Popen(["bash", "-c", "sleep 300 & echo $! > child; wait"],
                              cwd=tmp_path, start_new_session=True)  # fmt: skip
    try:
        assert wait_for_file(tmp_path / "child")
        orphan = int((tmp_path / "child").read_text())
        assert os.getpgid(orphan) == leader.pid
        record = {"identity": owner(leader.pid), "url": "x", "host": "127.0.0.1", "port": 1}
        (state / "mlflow.json").write_text(json.dumps(record))
        leader.kill()
        leader.wait()
        done = subprocess.run([*MLPIPE, "servers", "stop", "--state-dir", str(state)],
                              capture_output=True, text=True, timeout=60)  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "had exited; stopped what it left running" in done.stdout, done.stdout
        assert group_gone(leader.pid, 10), "the orphaned server is still running"
        assert not (state / "mlflow.json").exists()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(leader.pid, signal.SIGKILL)


def wait_for_file(path: Path, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return True
        time.sleep(0.1)
    return False
