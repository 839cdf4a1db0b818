"""Stage: cleaning (type coercion, missing targets, duplicates, missing-value policies)."""

from __future__ import annotations

import logging

from prefect import task

from mlpipe.config import CleanConfig
from mlpipe.data.clean import (
    CleanStats,
    Seen,
    carries_values,
    check_drop_rate,
    clean_in_parallel,
    clean_partition,
)
from mlpipe.data.roles import MIN_ROWS
from mlpipe.errors import DataError
from mlpipe.handoff import CleanedData, RunContext, ValidatedData
from mlpipe.io import tracking
from mlpipe.io.engine import engine_for
from mlpipe.io.tables import PartitionWriter, iter_partitions

log = logging.getLogger("mlpipe.clean")


@task(name="clean")
def clean_data(
    data: ValidatedData, cfg: CleanConfig, split_key: str | None, run: RunContext
) -> CleanedData:
    """Clean the validated rows partition by partition into ``clean/``; log the accounting."""
    keep = [split_key] if split_key else []
    schema = data.dataset
    engine = engine_for(run.execution, run.run_dir)
    stats = CleanStats()
    with PartitionWriter(run.path("clean")) as writer:
        if engine.name == "local" or carries_values(schema, cfg):
            # In order, in this process (ffill carries values from partition to partition).
            seen = Seen()
            for part in iter_partitions(data.path, progress="cleaning"):
                cleaned, part_stats = clean_partition(part, schema, cfg, keep=keep, seen=seen)
                writer.write(cleaned)
                stats += part_stats
            del seen  # the row hashes are no longer needed
        else:
            staging = run.path("clean-coerced")
            for part_stats in clean_in_parallel(
                engine, data.path, schema, cfg, keep, writer, staging
            ):
                stats += part_stats
        _log_accounting(stats, data, run)
        path = _checked(writer, stats, cfg)
    return CleanedData(path=path, dataset=data.dataset, stats=stats)


def _log_accounting(stats: CleanStats, data: ValidatedData, run: RunContext) -> None:
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


def _checked(writer: PartitionWriter, stats: CleanStats, cfg: CleanConfig) -> str:
    """Commit the cleaned rows, unless cleaning dropped too many or left too few."""
    check_drop_rate(stats, cfg.max_drop_rate)
    if stats.rows_kept < MIN_ROWS:
        raise DataError(
            f"only {stats.rows_kept} of {stats.rows_in} rows left after cleaning "
            f"(dropped: {stats.dropped}); at least {MIN_ROWS} are needed to train"
        )
    return writer.commit()
