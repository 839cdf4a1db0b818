"""Cleaning: type coercion, missing targets, duplicates, per-column missing values.

Partition-wise: :func:`clean_partition` takes a frame and returns a frame plus
:class:`CleanStats` that add up across partitions (``stats_a + stats_b``).
"""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from mlpipe.config import CleanConfig
from mlpipe.errors import DataError
from mlpipe.io.tables import PartitionWriter, row_hashes
from mlpipe.serving.schema import Schema, coerce_features, coerce_target

if TYPE_CHECKING:
    from mlpipe.io.engine import Engine


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

    @property
    def drop_rate(self) -> float:
        """Share of the rows that cleaning dropped."""
        return (self.rows_in - self.rows_kept) / self.rows_in if self.rows_in else 0.0

    def metrics(self) -> dict[str, float]:
        """Flat metrics for MLflow (``clean_rows_in``, ``clean_dropped_<reason>``, ...)."""
        out: dict[str, float] = {"clean_rows_in": self.rows_in, "clean_rows_kept": self.rows_kept}
        out.update({f"clean_dropped_{k}": v for k, v in self.dropped.items()})
        out.update({f"clean_coerced_{k}": v for k, v in self.coerced_to_missing.items()})
        return out


class Seen:
    """What earlier partitions leave for the next: kept rows' hashes, last values to carry.

    Pass one :class:`Seen` to :func:`clean_partition` for each partition in row order, so
    that duplicates are found across partitions and ``ffill`` continues over their
    boundaries. Rows are compared by a 64-bit hash of what the model sees; two different
    rows collide with probability about n^2 / 2^65 (7e-5 at 50 million rows).
    """

    def __init__(self) -> None:
        self.hashes = np.empty(0, dtype=np.uint64)
        self.last: dict[str, object] = {}

    def repeated(self, hashes: np.ndarray) -> np.ndarray:
        """Mask of rows seen before (in an earlier partition or earlier in this one)."""
        earlier = np.zeros(len(hashes), dtype=bool)
        if len(self.hashes):
            at = np.searchsorted(self.hashes, hashes).clip(max=len(self.hashes) - 1)
            earlier = self.hashes[at] == hashes
        return earlier | pd.Series(hashes).duplicated().to_numpy()

    def remember(self, hashes: np.ndarray) -> None:
        """Add the kept rows' hashes, keeping them sorted.

        Inserted at their places into one new array: the peak is the old and the new array
        (about 800 MB at 50 million rows), where concatenating and sorting held two more
        copies.
        """
        new = np.sort(hashes)
        self.hashes = np.insert(self.hashes, np.searchsorted(self.hashes, new), new)


def clean_partition(
    frame: pd.DataFrame,
    schema: Schema,
    cfg: CleanConfig,
    keep: list[str] | None = None,
    seen: Seen | None = None,
) -> tuple[pd.DataFrame, CleanStats]:
    """Clean one partition.

    Order matters: coerce types first (so ``"1"`` and ``1.0`` compare equal), then drop rows
    without a target, then duplicates, then apply the per-column missing-value policy.

    Args:
        frame: Raw rows (not modified).
        schema: Resolved column roles.
        cfg: Cleaning rules.
        keep: Extra columns carried through unchanged (e.g. the split key).
        seen: The earlier partitions' :class:`Seen` (updated); ``None``: a whole table.

    Returns:
        ``(cleaned, stats)``; the cleaned frame holds the feature columns, the ``keep`` columns
        and the target.
    """
    seen = Seen() if seen is None else seen
    out, dropped, coerced = _coerced(frame, schema, keep)
    if cfg.drop_duplicates:
        hashes = _hashes(out, schema)
        repeated = seen.repeated(hashes)
        out = _drop(out, repeated, "duplicate", dropped)
        seen.remember(hashes[~repeated])
    out = _policies(out, schema, cfg, seen, dropped)
    stats = CleanStats(
        rows_in=len(frame), rows_kept=len(out), dropped=dropped, coerced_to_missing=coerced
    )
    return out, stats


class Coerced(BaseModel):
    """What the first half of cleaning found in one partition (see :func:`coerce_partition`)."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    rows_in: int
    dropped: dict[str, int]
    coerced_to_missing: dict[str, int]
    hashes: np.ndarray | None = None  # of the rows left, when duplicates are dropped


def coerce_partition(
    frame: pd.DataFrame, schema: Schema, cfg: CleanConfig, keep: list[str] | None = None
) -> tuple[tuple[pd.DataFrame], Coerced]:
    """The first half of :func:`clean_partition`, for partitions cleaned in parallel.

    Types coerced and rows without a target dropped; the row hashes of what is left come
    back, so that the duplicates over all partitions are found in row order in one place
    (:class:`Seen`) before :func:`finish_partition`.
    """
    out, dropped, coerced = _coerced(frame, schema, keep)
    hashes = _hashes(out, schema) if cfg.drop_duplicates else None
    done = Coerced(rows_in=len(frame), dropped=dropped, coerced_to_missing=coerced, hashes=hashes)
    return (out.reset_index(drop=True),), done


def finish_partition(
    out: pd.DataFrame,
    found: tuple[Coerced, np.ndarray | None],
    schema: Schema,
    cfg: CleanConfig,
) -> tuple[tuple[pd.DataFrame], CleanStats]:
    """The second half: drop the rows ``found`` repeated, apply the missing-value policies.

    ``found``: the partition's :class:`Coerced` (without hashes) and its mask of rows seen
    before. ``ffill`` carries no value in from the previous partition here: a table with an
    ``ffill`` column is cleaned in one process, in order.
    """
    coerced, repeated = found
    dropped = dict(coerced.dropped)
    if repeated is not None:
        out = _drop(out, repeated, "duplicate", dropped)
    out = _policies(out, schema, cfg, Seen(), dropped)
    stats = CleanStats(
        rows_in=coerced.rows_in,
        rows_kept=len(out),
        dropped=dropped,
        coerced_to_missing=coerced.coerced_to_missing,
    )
    return (out,), stats


def _coerced(
    frame: pd.DataFrame, schema: Schema, keep: list[str] | None
) -> tuple[pd.DataFrame, dict[str, int], dict[str, int]]:
    """Features and target coerced, extra columns carried, rows without a target dropped."""
    dropped: dict[str, int] = {}
    features, coerced = coerce_features(frame, schema)
    extra = [c for c in (keep or []) if c not in schema.features and c != schema.target]
    out = features[[*schema.features, *extra]].copy()
    out[schema.target] = coerce_target(frame[schema.target], schema.task).to_numpy()
    out = _drop(out, out[schema.target].isna().to_numpy(), "missing_target", dropped)
    return out, dropped, coerced


def _hashes(out: pd.DataFrame, schema: Schema) -> np.ndarray:
    # What the model sees decides what a duplicate is; carried columns do not.
    return row_hashes(out[[*schema.features, schema.target]])


def _drop(
    out: pd.DataFrame, mask: np.ndarray, reason: str, dropped: dict[str, int]
) -> pd.DataFrame:
    n = int(mask.sum())
    if not n:
        return out
    dropped[reason] = dropped.get(reason, 0) + n
    return out.loc[~mask]


def _policies(
    out: pd.DataFrame, schema: Schema, cfg: CleanConfig, seen: Seen, dropped: dict[str, int]
) -> pd.DataFrame:
    """The per-column missing-value policies; ``seen.last`` carries ``ffill`` values."""
    for col in schema.features:
        policy = cfg.missing.get(col, cfg.missing_default)
        if policy == "drop":
            out = _drop(out, out[col].isna().to_numpy(), f"missing_{col}", dropped)
        elif policy == "ffill":
            filled = out[col].ffill()
            if col in seen.last:  # leading gaps take the previous partition's last value
                filled = filled.fillna(seen.last[col])
            out[col] = filled
            present = filled.dropna()
            if len(present):
                seen.last[col] = present.iloc[-1]
    return out.reset_index(drop=True)


def clean_in_parallel(
    engine: Engine,
    path: str,
    schema: Schema,
    cfg: CleanConfig,
    keep: list[str],
    writer: PartitionWriter,
    staging: Path,
) -> Iterator[CleanStats]:
    """Clean on the engine's workers in two passes (types, then rows), via ``staging``.

    The duplicates are found here between the passes, in row order, so the rows kept and
    the accounting equal :func:`clean_partition` applied in order.
    """
    seen = Seen()
    found: list[tuple[Coerced, np.ndarray | None]] = []
    with PartitionWriter(staging) as staged:
        for coerced in engine.rewrite(
            coerce_partition, path, [staged], schema, cfg, keep, progress="cleaning (types)"
        ):
            if coerced.rows_in == sum(coerced.dropped.values()):  # nothing left, nothing staged
                yield CleanStats(
                    rows_in=coerced.rows_in,
                    dropped=coerced.dropped,
                    coerced_to_missing=coerced.coerced_to_missing,
                )
                continue
            repeated = None
            if coerced.hashes is not None:
                repeated = seen.repeated(coerced.hashes)
                seen.remember(coerced.hashes[~repeated])
            found.append((coerced.model_copy(update={"hashes": None}), repeated))
        del seen
        if not found:
            return  # every row was dropped: the caller's checks say why
        coerced_path = staged.commit()
    try:
        yield from engine.rewrite(
            finish_partition, coerced_path, [writer], schema, cfg,
            each=found, progress="cleaning (rows)",
        )  # fmt: skip
    finally:
        shutil.rmtree(coerced_path, ignore_errors=True)


def carries_values(schema: Schema, cfg: CleanConfig) -> bool:
    """Whether a column's policy is ``ffill`` (partitions must then be cleaned in order)."""
    return any(cfg.missing.get(c, cfg.missing_default) == "ffill" for c in schema.features)


def check_drop_rate(stats: CleanStats, max_rate: float) -> None:
    """Fail when cleaning dropped more than ``max_rate`` of the rows: the data was misread.

    Raises:
        DataError: Naming the share dropped and the reasons.
    """
    if stats.drop_rate > max_rate:
        reasons = ", ".join(
            f"{k} {v}" for k, v in sorted(stats.dropped.items(), key=lambda kv: -kv[1])
        )
        raise DataError(
            f"cleaning dropped {stats.rows_in - stats.rows_kept} of {stats.rows_in} rows "
            f"({stats.drop_rate:.1%} > clean.max_drop_rate {max_rate:.0%}; {reasons}): "
            "check how the data was read (a file's delimiter, decimal mark, header; a query's "
            "joins) before training"
        )
