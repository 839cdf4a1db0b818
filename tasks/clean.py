"""Stage: cleaning (type coercion, missing targets, duplicates, missing-value policies)."""

from __future__ import annotations

import logging

from prefect import task

from mlpipe.config import CleanConfig
from mlpipe.data.clean import check_drop_rate, clean_partition
from mlpipe.data.roles import MIN_ROWS
from mlpipe.errors import DataError
from mlpipe.handoff import CleanedData, RunContext, ValidatedData
from mlpipe.io import tracking
from mlpipe.io.tables import read_parquet, write_parquet

log = logging.getLogger("mlpipe.clean")


@task(name="clean")
def clean_data(
    data: ValidatedData, cfg: CleanConfig, split_key: str | None, run: RunContext
) -> CleanedData:
    """Clean the validated rows, write ``clean.parquet`` and log the row accounting."""
    keep = [split_key] if split_key else []
    cleaned, stats = clean_partition(read_parquet(data.path), data.dataset, cfg, keep=keep)
    gate = data.gate
    # rows in = rows kept + rows quarantined + rows dropped, each with a reason.
    accounting = {
        "rows_in": gate.rows_in,
        "rows_quarantined": gate.rows_quarantined,
        "rows_dropped": stats.rows_in - stats.rows_kept,
        "rows_kept": stats.rows_kept,
    }
    tracking.log_metrics(run.run_id, {**stats.metrics(), **accounting})
    tracking.log_dict(
        run.run_id,
        {**accounting, "quarantine_reasons": gate.reasons, "cleaning": stats.model_dump()},
        "data/accounting.json",
    )
    log.info(
        "cleaning: %d rows in, %d kept, dropped %s, coerced to missing %s",
        stats.rows_in,
        stats.rows_kept,
        stats.dropped or "none",
        stats.coerced_to_missing or "none",
    )
    check_drop_rate(stats, cfg.max_drop_rate)
    if len(cleaned) < MIN_ROWS:
        raise DataError(
            f"only {len(cleaned)} of {stats.rows_in} rows left after cleaning "
            f"(dropped: {stats.dropped}); at least {MIN_ROWS} are needed to train"
        )
    path = write_parquet(cleaned, run.path("clean.parquet"))
    return CleanedData(path=path, dataset=data.dataset, stats=stats)
