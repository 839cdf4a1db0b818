"""Helpers for tests against real servers: processes, ports, databases, REST calls."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

PG_HOST = "127.0.0.1:5432"
PG = f"postgres@{PG_HOST}"
# A password no output may ever contain (PostgreSQL here uses trust auth and ignores it).
SENTINEL = "S3NTINEL-pw-4c7e"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def psql(sql: str) -> None:
    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-q", "-c", sql],
                   check=True, capture_output=True)  # fmt: skip


def start(
    cmd: list[str], env: dict[str, str], log: Path, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    # A new session: teardown kills the whole process group (servers spawn workers).
    return subprocess.Popen(cmd, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                            start_new_session=True, cwd=cwd)  # fmt: skip


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def http_json(url: str, body: dict | None = None) -> object:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"},
                                     method="POST" if body is not None else "GET")  # fmt: skip
    with urllib.request.urlopen(request, timeout=30) as resp:  # local servers only
        return json.loads(resp.read())


@dataclass
class Stack:
    """Running servers and the environment that points at them."""

    prefect_api: str
    mlflow_uri: str
    env: dict[str, str]
    workdir: Path
    logs: Path

    def flow_runs(self, **flt: object) -> list[dict]:
        return list(http_json(f"{self.prefect_api}/flow_runs/filter", {"flow_runs": flt}))  # type: ignore[arg-type]

    def mlflow(self, path: str, body: dict | None = None) -> dict:
        return dict(http_json(f"{self.mlflow_uri}/api/2.0/mlflow/{path}", body))  # type: ignore[arg-type]


def mlpipe(stack: Stack, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "mlpipe", *args]
    return subprocess.run(command, env=stack.env, cwd=stack.workdir, capture_output=True,
                          text=True, timeout=timeout)  # fmt: skip


def wait_for(predicate, timeout: float, every: float = 2.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    return None
