"""Stage: cleaning — type coercion, missing targets, duplicates, per-column missing values.

The logic is partition-wise: :func:`clean_partition` takes a frame and returns a frame plus
:class:`CleanStats` that add up across partitions (``stats_a + stats_b``).
"""

from __future__ import annotations

from collections import Counter

import pandas as pd
from prefect import task
from pydantic import BaseModel, ConfigDict

from tasks.core import tracking
from tasks.core.config import CleanConfig
from tasks.core.errors import DataError
from tasks.core.run import RunContext, logger, read_parquet, write_parquet
from tasks.core.schema import Schema, coerce_features, coerce_target
from tasks.load import MIN_ROWS
from tasks.validate import ValidatedData


class CleanStats(BaseModel):
    """Row accounting of cleaning: ``rows_in == rows_kept + sum(dropped.values())``."""

    model_config = ConfigDict(frozen=True)

    rows_in: int = 0
    rows_kept: int = 0
    dropped: dict[str, int] = {}
    coerced_to_missing: dict[str, int] = {}

    def __add__(self, other: CleanStats) -> CleanStats:
        return CleanStats(
            rows_in=self.rows_in + other.rows_in,
            rows_kept=self.rows_kept + other.rows_kept,
            dropped=dict(Counter(self.dropped) + Counter(other.dropped)),
            coerced_to_missing=dict(
                Counter(self.coerced_to_missing) + Counter(other.coerced_to_missing)
            ),
        )

    def metrics(self) -> dict[str, float]:
        """Flat metrics for MLflow (``clean_rows_in``, ``clean_dropped_<reason>``, ...)."""
        out: dict[str, float] = {"clean_rows_in": self.rows_in, "clean_rows_kept": self.rows_kept}
        out.update({f"clean_dropped_{k}": v for k, v in self.dropped.items()})
        out.update({f"clean_coerced_{k}": v for k, v in self.coerced_to_missing.items()})
        return out


class CleanedData(BaseModel):
    """The cleaned table in the run directory and its accounting."""

    model_config = ConfigDict(frozen=True)

    path: str
    dataset: Schema
    stats: CleanStats


def clean_partition(
    frame: pd.DataFrame, schema: Schema, cfg: CleanConfig
) -> tuple[pd.DataFrame, CleanStats]:
    """Clean one partition.

    Order matters: coerce types first (so ``"1"`` and ``1.0`` compare equal), then drop rows
    without a target, then duplicates, then apply the per-column missing-value policy.

    Args:
        frame: Raw rows (not modified).
        schema: Resolved column roles.
        cfg: Cleaning rules.

    Returns:
        ``(cleaned, stats)``; the cleaned frame holds the target and feature columns only.
    """
    rows_in = len(frame)
    dropped: dict[str, int] = {}
    features, coerced = coerce_features(frame, schema)
    out = features[schema.features].copy()
    out[schema.target] = coerce_target(frame[schema.target], schema.task).to_numpy()

    def drop(mask: pd.Series, reason: str) -> None:
        nonlocal out
        n = int(mask.sum())
        if n:
            dropped[reason] = dropped.get(reason, 0) + n
            out = out.loc[~mask]

    drop(out[schema.target].isna(), "missing_target")
    if cfg.drop_duplicates:
        drop(out.duplicated(keep="first"), "duplicate")
    for col in schema.features:
        policy = cfg.missing.get(col, cfg.missing_default)
        if policy == "drop":
            drop(out[col].isna(), f"missing_{col}")
        elif policy == "ffill":
            out[col] = out[col].ffill()
    out = out.reset_index(drop=True)
    stats = CleanStats(
        rows_in=rows_in, rows_kept=len(out), dropped=dropped, coerced_to_missing=coerced
    )
    return out, stats


@task(name="clean")
def clean_data(data: ValidatedData, cfg: CleanConfig, run: RunContext) -> CleanedData:
    """Clean the raw table, write ``clean.parquet`` and log the row accounting."""
    log = logger("clean")
    unknown = sorted(set(cfg.missing) - set(data.dataset.features))
    if unknown:
        raise DataError(f"clean.missing names columns that are not features: {', '.join(unknown)}")
    cleaned, stats = clean_partition(read_parquet(data.path), data.dataset, cfg)
    if len(cleaned) < MIN_ROWS:
        raise DataError(
            f"only {len(cleaned)} of {stats.rows_in} rows left after cleaning "
            f"(dropped: {stats.dropped}); at least {MIN_ROWS} are needed to train"
        )
    path = write_parquet(cleaned, run.path("clean.parquet"))
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
    return CleanedData(path=path, dataset=data.dataset, stats=stats)
