"""The training run's lifecycle: its MLflow run and run directory, opened and closed together."""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

from mlpipe import smoke
from mlpipe.config import Config, flatten
from mlpipe.data.datasets import dataset_name, model_name
from mlpipe.handoff import RunContext
from mlpipe.io import engine, tracking
from mlpipe.io.processes import owner, owner_alive

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def training_run(config: Config, flow_run_id: str | None = None) -> Iterator[RunContext]:
    """Open an MLflow run and a run directory; close both whatever happens.

    On success the MLflow run is FINISHED and the run directory stays for inspection. On any
    error (SIGTERM and Ctrl-C included) the run is FAILED with the error as a tag, a version it
    registered but never judged is marked failed, and the run directory is removed, so nothing
    half-written is left behind; the error propagates.

    Args:
        config: The resolved configuration (logged as params, secrets redacted).
        flow_run_id: The Prefect flow run, recorded so a later recovery can close it.

    Yields:
        The run context handed to every stage.
    """
    tracking.configure(config.tracking.uri, config.tracking.retry_seconds)
    name = dataset_name(config.dataset)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    tags = {
        **tracking.git_info(PROJECT_ROOT),
        "mlpipe.dataset": name,
        "mlpipe.validation.status": "pending",
        "mlpipe.model.name": model_name(config.dataset, config.tracking.model_name),
    }
    if flow_run_id:
        tags[tracking.FLOW_RUN_TAG] = flow_run_id
    run_name = f"{name}-{config.train.architecture}-{stamp}"
    # The fresh interpreter of the smoke test imports its libraries while this run trains.
    smoke.prestart(tracking.current_uri())
    try:
        with tracking.tracked_run(config.tracking.experiment, run_name, tags) as run_id:
            run_dir = Path(config.runs_dir) / f"{stamp}-{run_id[:8]}"
            try:
                run_dir.mkdir(parents=True, exist_ok=False)
                tracking.log_params(run_id, flatten(config))
                tracking.log_dict(run_id, config.safe_dump(), "config/resolved.json")
                yield RunContext(
                    run_id=run_id, run_dir=str(run_dir.resolve()), execution=config.execution
                )
            except BaseException:
                shutil.rmtree(run_dir, ignore_errors=True)
                raise
    finally:
        smoke.discard()
        engine.shutdown()  # a local Dask cluster started for this run stops with it


def remove_run_dirs(runs_dir: str, run_ids: list[str]) -> list[str]:
    """Delete the run directories of runs (e.g. ones whose process was killed)."""
    removed = []
    base = Path(runs_dir)
    for run_id in run_ids:
        for folder in base.glob(f"*-{run_id[:8]}"):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(str(folder))
    return removed


STAGING_PREFIX = ".staging-"
OWNER_FILE = "OWNER"


@contextlib.contextmanager
def staging(runs_dir: str) -> Iterator[Path]:
    """A fresh folder under ``runs_dir`` for data checked before a run starts.

    The run adopts what it needs by renaming it into its run directory (same file system, so
    no copy); the folder and whatever is left in it are removed on exit, and so are
    ``runs_dir`` and the parents this made, when left empty (a refused input leaves nothing).
    Folders of staging processes that no longer run (killed) are removed first: each names its
    process by host, id and start time, so a process of another host or container, or a
    reused process id, is never mistaken for it.
    """
    import uuid

    base = Path(runs_dir)
    made = [p for p in (base, *base.parents) if not p.exists()]
    for stale in base.glob(f"{STAGING_PREFIX}*") if base.exists() else ():
        try:
            identity = (stale / OWNER_FILE).read_text(encoding="utf-8").strip()
        except OSError:
            continue  # being created, or not ours
        if owner_alive(identity) is False:
            shutil.rmtree(stale, ignore_errors=True)
    folder = base / f"{STAGING_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}"
    folder.mkdir(parents=True)
    try:
        (folder / OWNER_FILE).write_text(owner(), encoding="utf-8")
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        for created in made:  # innermost first; stops at the first one not empty
            try:
                created.rmdir()
            except OSError:
                break
