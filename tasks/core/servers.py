"""Local Prefect and MLflow servers: their command lines, environments and health checks.

Database URLs (which may hold credentials) come from options or the environment, and are never
printed or logged with their password: see :func:`redact`.
"""

from __future__ import annotations

import os
import re
import sys
import time
import urllib.request
from pathlib import Path

MLFLOW_BACKEND_ENV = "MLPIPE_MLFLOW_BACKEND_URI"
PREFECT_DB_ENV = "PREFECT_API_DATABASE_CONNECTION_URL"


def redact(url: str) -> str:
    """Hide the password of a URL (``postgresql://user:secret@host`` -> ``user:***@host``)."""
    return re.sub(r"(://[^:/@]+:)[^@]+@", r"\1***@", url)


def mlflow_command(
    host: str, port: int, backend_uri: str | None, artifacts: str, allowed_hosts: str | None
) -> tuple[list[str], dict[str, str]]:
    """``mlflow server`` with one worker, no job runner, artifacts served from ``artifacts``."""
    backend = (
        backend_uri
        or os.environ.get(MLFLOW_BACKEND_ENV)
        or (f"sqlite:///{Path.cwd() / 'mlflow.db'}")
    )
    cmd = [
        sys.executable, "-m", "mlflow", "server",
        "--host", host, "--port", str(port), "--workers", "1",
        "--backend-store-uri", backend,
        "--artifacts-destination", str(Path(artifacts).resolve()),
    ]  # fmt: skip
    if allowed_hosts:
        cmd += ["--allowed-hosts", allowed_hosts]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    return cmd, env


def prefect_command(
    host: str, port: int, database_url: str | None
) -> tuple[list[str], dict[str, str]]:
    """``prefect server start`` on ``host:port``, on SQLite or the given PostgreSQL URL."""
    env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    # What the browser calls; behind a container port mapping the caller sets it.
    env.setdefault("PREFECT_UI_API_URL", f"http://{host}:{port}/api")
    if database_url:
        env[PREFECT_DB_ENV] = database_url
    env.pop("PREFECT_API_URL", None)  # the server must not point at itself or another one
    cmd = [sys.executable, "-m", "prefect", "server", "start", "--host", host, "--port", str(port)]
    return cmd, env


def wait_healthy(url: str, timeout: float = 120.0) -> bool:
    """Poll ``url`` until it answers 200, or give up after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.5)
    return False
