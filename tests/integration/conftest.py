"""Real Prefect and MLflow servers on PostgreSQL, as subprocesses on free ports.

The database URLs carry a password (PostgreSQL here uses trust auth and ignores it), so the
sentinel scan in ``test_secrets.py`` can check that it never leaks.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator

import pytest

from mlpipe.servers import mlflow_command, prefect_command, wait_healthy
from tests.integration.stack import PG_HOST, SENTINEL, Stack, free_port, psql, start, stop


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Prefect + MLflow servers on fresh PostgreSQL databases; torn down even on failure."""
    if subprocess.run(["pg_isready", "-h", "127.0.0.1"], capture_output=True).returncode != 0:
        pytest.fail("PostgreSQL is not running on 127.0.0.1:5432")
    workdir = tmp_path_factory.mktemp("stack")
    suffix = uuid.uuid4().hex[:8]
    dbs = {"prefect": f"mlpipe_it_prefect_{suffix}", "mlflow": f"mlpipe_it_mlflow_{suffix}"}
    for db in dbs.values():
        psql(f"CREATE DATABASE {db}")
    inherited = ("PREFECT_", "MLFLOW_TRACKING", "MLFLOW_REGISTRY")
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(inherited)}
    base_env.update(PREFECT_HOME=str(workdir / "prefect-home"), PYTHONUNBUFFERED="1")
    procs: list[subprocess.Popen[bytes]] = []
    credentials = f"postgres:{SENTINEL}@{PG_HOST}"
    try:
        p_port, m_port = free_port(), free_port()
        cmd, env = prefect_command(
            "127.0.0.1", p_port, f"postgresql+asyncpg://{credentials}/{dbs['prefect']}"
        )
        procs.append(start(cmd, {**base_env, **{k: v for k, v in env.items()
                                               if k.startswith("PREFECT_")}},
                           workdir / "prefect.log"))  # fmt: skip
        cmd, env = mlflow_command("127.0.0.1", m_port, f"postgresql://{credentials}/{dbs['mlflow']}",
                                  str(workdir / "artifacts"), None)  # fmt: skip
        procs.append(start(cmd, {**base_env, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
                                 "MLFLOW_BACKEND_STORE_URI": env["MLFLOW_BACKEND_STORE_URI"]},
                           workdir / "mlflow.log"))  # fmt: skip
        api, mlflow_uri = f"http://127.0.0.1:{p_port}/api", f"http://127.0.0.1:{m_port}"
        assert wait_healthy(f"{api}/health", 180), (workdir / "prefect.log").read_text()[-3000:]
        assert wait_healthy(f"{mlflow_uri}/health", 180), (workdir / "mlflow.log").read_text()[
            -3000:
        ]
        env = {**base_env, "PREFECT_API_URL": api, "MLFLOW_TRACKING_URI": mlflow_uri,
               "PREFECT_RUNNER_POLL_FREQUENCY": "2"}  # fmt: skip
        yield Stack(api, mlflow_uri, env, workdir, workdir)
    finally:
        for proc in reversed(procs):
            stop(proc)
        for db in dbs.values():
            psql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
