"""Local Prefect and MLflow servers: their command lines, environments and health checks.

Database URLs (which may hold credentials) reach the servers only through the environment,
never the command line, where ``ps`` shows them to every user of the machine.
"""

from __future__ import annotations

import os
import sys
import time
import urllib.request
from pathlib import Path

from mlpipe.errors import ConfigError
from mlpipe.secrets import has_secret

MLFLOW_BACKEND_ENV = "MLPIPE_MLFLOW_BACKEND_URI"
PREFECT_DB_ENV = "PREFECT_API_DATABASE_CONNECTION_URL"


def no_secret_in_argv(value: str | None, option: str, env: str) -> None:
    """Refuse a password on the command line.

    Raises:
        ConfigError: ``value`` holds a password.
    """
    if value and has_secret(value):
        raise ConfigError(
            f"{option} holds a password, and command lines are visible to every user (ps): "
            f"put the URL in ${env} instead"
        )


def mlflow_command(
    host: str, port: int, backend_uri: str | None, artifacts: str, allowed_hosts: str | None
) -> tuple[list[str], dict[str, str]]:
    """``mlflow server`` with one worker and no job runner; the backend URL via environment."""
    backend = (
        backend_uri
        or os.environ.get(MLFLOW_BACKEND_ENV)
        or (f"sqlite:///{Path.cwd() / 'mlflow.db'}")
    )
    cmd = [sys.executable, "-m", "mlflow", "server", "--host", host, "--port", str(port)]
    cmd += ["--workers", "1", "--artifacts-destination", str(Path(artifacts).resolve())]
    if allowed_hosts:
        cmd += ["--allowed-hosts", allowed_hosts]
    env = {
        **os.environ,
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        # `mlflow server` reads its backend from the environment: no database URL in `ps`.
        "MLFLOW_BACKEND_STORE_URI": backend,
    }
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
    """Poll ``url`` until it answers 200, or give up after ``timeout`` seconds.

    A ``tcp://host:port`` URL (a Dask scheduler) is healthy when it accepts a connection.
    """
    import socket
    from urllib.parse import urlsplit

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if url.startswith("tcp://"):
                parts = urlsplit(url)
                with socket.create_connection((parts.hostname, parts.port), timeout=2):
                    return True
            with urllib.request.urlopen(url, timeout=2) as resp:  # local health endpoints only
                if resp.status == 200:
                    return True
        except (OSError, ValueError):
            pass
        time.sleep(0.5)
    return False


def dask_commands(host: str, port: int, workers: int) -> tuple[list[str], list[str]]:
    """``dask scheduler`` on ``host:port`` and ``dask worker`` with ``workers`` processes.

    One thread per worker process (mlpipe's partition functions hold the GIL in pandas), no
    dashboards (they need packages mlpipe does not install, and bind more ports).
    """
    tool = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
    scheduler = [*tool, "--host", host, "--port", str(port), "--no-dashboard"]
    scheduler += ["--dashboard-address", f"{host}:0"]  # its HTTP endpoints: any free port
    worker = [sys.executable, "-m", "distributed.cli.dask_worker", f"tcp://{host}:{port}"]
    worker += ["--nworkers", str(workers), "--nthreads", "1", "--no-dashboard", "--host", host]
    worker += ["--dashboard-address", f"{host}:0"]  # their HTTP endpoints too, on host only
    return scheduler, worker


def port_free(host: str, port: int) -> bool:
    """Whether nothing listens on ``host:port`` (a bind succeeds)."""
    return bind_problem(host, port) is None


def bind_problem(host: str, port: int) -> str | None:
    """Why a server could not listen on ``host:port`` (``None``: it could, now)."""
    import errno
    import socket

    with socket.socket() as sock:
        # As servers bind (uvicorn, asyncio): connections of a stopped server lingering in
        # TIME_WAIT do not stop a new one from listening; a listening socket does.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                return "the port is already in use"
            return err.strerror or str(err)
    return None


def free_port(host: str) -> int:
    """A port on ``host`` that nothing listens on now."""
    import socket

    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def reachable(address: str, timeout: float = 5.0) -> str | None:
    """Why ``tcp://host:port`` refuses a connection (``None``: it accepts one)."""
    import socket
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(address)
        if parts.hostname is None or parts.port is None:
            return "no host and port"
        with socket.create_connection((parts.hostname, parts.port), timeout=timeout):
            return None
    except (OSError, ValueError) as err:
        return " ".join(str(err).split()) or type(err).__name__
