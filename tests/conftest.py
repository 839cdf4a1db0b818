"""Shared fixtures: every test gets its own working directory and MLflow store."""

from __future__ import annotations

import http.server
import logging
import sys
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from mlpipe.runtime import configure_environment
from tests.helpers import make_mixed_frame

configure_environment()
# Prefect binds its console log handler to sys.stderr when first imported. Import it now, under
# pytest's session-long capture, not inside a test whose captured stream closes after it.
import prefect  # noqa: E402, F401


@pytest.fixture(autouse=True)
def isolated_workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run each test in tmp_path with MLflow pointed at a SQLite file there."""
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    # A flow run sets MLflow's process-wide URI; each test starts from its own store.
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return tmp_path


@pytest.fixture(autouse=True)
def repair_log_streams() -> Iterator[None]:
    """Point log handlers left on a test's (now closed) capture stream back to stderr.

    Libraries bind console handlers to ``sys.stderr`` when they configure logging; when that
    happens inside a test, the stream is pytest's per-test capture, closed afterwards, and a
    later record fails (Prefect's rich handler then recurses). A real process never closes
    stderr; this only keeps many in-process CLI runs in one test session honest.
    """
    yield
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    for logger in loggers:
        for handler in getattr(logger, "handlers", []):
            stream = getattr(handler, "stream", None)
            if stream is not None and getattr(stream, "closed", False):
                handler.stream = sys.stderr  # type: ignore[attr-defined]
            console = getattr(handler, "console", None)
            if console is not None and getattr(console.file, "closed", False):
                console.file = sys.stderr


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One temporary Prefect server for the whole session (started only if a test needs it)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def mixed_csv(tmp_path: Path) -> Path:
    """Path of a mixed classification CSV (target column `label`)."""
    path = tmp_path / "mixed.csv"
    make_mixed_frame().to_csv(path, index=False)
    return path


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def web_folder(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A plain HTTP server on a free loopback port, serving ``tmp_path / "www"``."""
    folder = tmp_path / "www"
    folder.mkdir()
    handler = partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", folder
    finally:
        server.shutdown()
        server.server_close()
