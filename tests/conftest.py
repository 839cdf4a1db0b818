"""Shared fixtures: every test gets its own working directory and MLflow store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from flows.runtime import configure_environment
from tests.helpers import make_mixed_frame

configure_environment()


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
