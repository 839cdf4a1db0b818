"""Per-run bookkeeping shared by all stages: the run directory and Parquet I/O."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from tasks.core.config import Config


class RunContext(BaseModel):
    """Identifies one training run: its MLflow run and its scratch directory.

    Attributes:
        run_id: MLflow run id.
        run_dir: Directory that holds the run's Parquet files and fitted objects.
        tracking_uri: MLflow tracking URI the run lives in.
    """

    model_config = ConfigDict(frozen=True)

    run_id: str
    run_dir: str
    tracking_uri: str

    def path(self, name: str) -> Path:
        """Path of a file inside the run directory."""
        return Path(self.run_dir) / name


def write_parquet(frame: pd.DataFrame, path: str | Path) -> str:
    """Write a frame atomically (temp file + rename), so no half-written file is ever read."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(target.suffix + ".tmp")
    frame.to_parquet(tmp, index=False)
    os.replace(tmp, target)
    return str(target)


def read_parquet(path: str | Path) -> pd.DataFrame:
    """Read a Parquet file written by :func:`write_parquet`."""
    return pd.read_parquet(path)


def logger(stage: str) -> logging.Logger:
    """Logger for a stage; the CLI shows ``mlpipe.*`` records, Prefect forwards them to its UI."""
    return logging.getLogger(f"mlpipe.{stage}")


@contextlib.contextmanager
def tracked_run(config: Config) -> Iterator[RunContext]:
    """Open an MLflow run and a run directory; close both whatever happens.

    On success the MLflow run is FINISHED and the run directory stays for inspection. On any
    error the run is marked FAILED with the error as a tag, and the run directory is removed so
    nothing half-written is left behind; the error propagates.

    Args:
        config: The resolved configuration (logged as params).

    Yields:
        The run context handed to every stage.
    """
    from tasks.core import tracking
    from tasks.core.config import flatten
    from tasks.core.datasets import dataset_name

    uri = tracking.configure(config.tracking.uri)
    name = dataset_name(config.dataset)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    tags = {
        **tracking.git_info(Path(__file__).resolve().parent),
        "mlpipe.dataset": name,
        "mlpipe.validation.status": "pending",
    }
    run_id = tracking.start_run(
        config.tracking.experiment, f"{name}-{config.train.architecture}-{stamp}", uri, tags
    )
    run_dir = Path(config.runs_dir) / f"{stamp}-{run_id[:8]}"
    run_dir.mkdir(parents=True, exist_ok=False)
    context = RunContext(run_id=run_id, run_dir=str(run_dir.resolve()), tracking_uri=uri)
    try:
        tracking.log_params(run_id, flatten(config))
        tracking.log_dict(run_id, config.model_dump(mode="json"), "config/resolved.json")
        yield context
    except BaseException as err:
        tracking.set_tags(run_id, {"mlpipe.error": f"{type(err).__name__}: {err}"[:5000]})
        tracking.end_run(run_id, failed=True)
        shutil.rmtree(run_dir, ignore_errors=True)
        raise
    tracking.end_run(run_id, failed=False)
