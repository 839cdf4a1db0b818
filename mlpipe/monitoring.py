"""Monitoring's data: accepted batches, the training window over them, drift in MLflow.

A batch that passed its quality gate (and holds the target) is kept as
``<store>/date=YYYY-MM-DD/batch-<digest>.parquet``; the file name is the batch's content digest,
so seeing the same batch again keeps one copy. Training runs started by a deployment read the
reference data plus a window over these files (``schedule.window``).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import tempfile
from pathlib import Path

import pandas as pd

from mlpipe.config import Config, WindowConfig
from mlpipe.data.datasets import dataset_name, is_builtin
from mlpipe.io import tracking
from mlpipe.io.sources import is_database, is_remote
from mlpipe.learn.drift import DriftReport
from mlpipe.reports import plots

log = logging.getLogger("mlpipe.monitor")
_GLOB_CHARS = set("*?[")


def batch_store(config: Config) -> Path:
    """Where accepted batches of ``config``'s dataset live.

    ``schedule.batch_store``, else beside the source: ``<source>.batches``, a sibling of the
    file, the folder or a glob's base folder (never inside what the source reads); for a
    built-in dataset, a database or a URL, ``.mlpipe/batches/<dataset name>``.
    """
    if config.schedule.batch_store:
        return Path(config.schedule.batch_store)
    spec = config.dataset
    if is_builtin(spec.source) or is_database(spec.source) or is_remote(spec.source):
        # Nothing local to sit beside: the project's own folder.
        return Path(".mlpipe") / "batches" / dataset_name(spec)
    source = Path(spec.source)
    plain = [part for part in source.parts if not _GLOB_CHARS & set(part)]
    if len(plain) < len(source.parts):  # a glob: beside the folder before its first pattern
        first = next(i for i, part in enumerate(source.parts) if _GLOB_CHARS & set(part))
        source = Path(*source.parts[:first]) if first else Path(".")
    source = source.resolve()
    return source.parent / f"{source.name}.batches"


def accept(frame: pd.DataFrame, store: Path, digest: str, when: dt.datetime) -> Path | None:
    """Keep a batch's passing rows as a dated partition; ``None`` if this batch is kept already.

    Written to a temporary file and renamed, so a killed process never leaves half a batch.
    """
    name = f"batch-{digest[:16]}.parquet"
    if any(store.glob(f"date=*/{name}")):
        return None
    folder = store / f"date={when:%Y-%m-%d}"
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".batch-", suffix=".tmp", dir=folder)
    os.close(fd)
    try:
        frame.to_parquet(tmp, index=False)
        os.replace(tmp, folder / name)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return folder / name


def keep_batch(config: Config, passing: pd.DataFrame, target: str) -> str:
    """Keep a batch's passing rows for training windows, conformed to the training data.

    The rows get the reference data's columns and types (read from its first rows), so a
    kept batch never breaks a later training run; the file is named by the conformed
    content, so the same rows sent again in another shape (column order, extra columns,
    ``5`` as ``5.0``) are kept once.

    Returns:
        What happened, in words (``kept N rows in ...``, ``already kept ...`` or why not).
    """
    from mlpipe.data.datasets import iter_source
    from mlpipe.errors import DataError
    from mlpipe.io.tables import conform, frame_digest

    if target not in passing.columns:
        return f"not kept for training: no '{target}' column (no labels)"
    if passing.empty:
        return "not kept for training: no row passed"
    blocks = iter_source(config.dataset, 1000)
    like = next(iter(blocks)).head(0)
    blocks.close()  # type: ignore[attr-defined]
    try:
        rows = conform(passing, like, "the batch").reset_index(drop=True)
    except DataError as err:
        return f"not kept for training: {err}"
    store = batch_store(config)
    kept = accept(rows, store, frame_digest(rows), dt.datetime.now(dt.UTC))
    if kept is None:
        return f"already kept in {store} (the same rows)"
    return f"kept {len(rows)} rows in {kept}"


def _accepted_on(path: Path) -> dt.date | None:
    try:
        return dt.date.fromisoformat(path.parent.name.removeprefix("date="))
    except ValueError:
        return None


def window(store: Path, cfg: WindowConfig, today: dt.date) -> list[Path]:
    """The accepted batches a window selects, oldest first.

    Args:
        store: The batch store.
        cfg: How many batches, or how recent.
        today: The date the window ends on.
    """
    found = []
    for path in store.glob("date=*/batch-*.parquet"):
        day = _accepted_on(path)
        if day is not None:
            found.append((day, path.stat().st_mtime_ns, path))
    found.sort()
    files = [path for day, _, path in found if cfg.days is None or _within(day, today, cfg.days)]
    if cfg.batches is not None:
        files = files[max(len(files) - cfg.batches, 0) :]
    return files


def _within(day: dt.date, today: dt.date, days: float) -> bool:
    return (today - day) < dt.timedelta(days=days)


def log_drift(run_id: str, report: DriftReport, folder: Path) -> None:
    """Record a drift report on an MLflow run: table, PSI plot, summary and two metrics.

    The one place that does so, for training runs and monitoring runs alike.
    """
    table = report.table()
    if len(table):
        tracking.log_table(run_id, table, "drift/drift_table.json")
        figure = plots.drift_bars(
            table["column"].tolist(),
            table["psi"].tolist(),
            table["drifted"].tolist(),
            report.threshold,
        )
        tracking.log_artifact(run_id, plots.save(figure, folder / "drift" / "psi.png"), "drift")
        tracking.log_metrics(
            run_id,
            {"drift_columns": len(report.drifted), "drift_max_psi": float(table["psi"].max())},
        )
    tracking.log_text(run_id, report.markdown(), "drift/summary.md")
