"""Train/validation/test split by a salted hash of each row.

A row lands in a split by the hash of its content (or of its ``split.key`` column) and the salt,
so its split does not depend on the seed, the row order or the other rows. Every version trained
with the same salt holds out the same rows, and any version's held-out rows can be recomputed
from its :class:`SplitSpec` (stored with the version): promotion compares champion and
challenger only on rows neither of them trained on.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from mlpipe.config import SplitConfig
from mlpipe.errors import ConfigError, DataError
from mlpipe.serving.schema import Schema, to_jsonable


class SplitSpec(BaseModel):
    """Everything needed to recompute which rows a version held out."""

    model_config = ConfigDict(frozen=True)

    salt: str
    columns: list[str]
    test_size: float
    val_size: float
    key: str | None = None


def split_spec(cfg: SplitConfig, schema: Schema) -> SplitSpec:
    """The spec for a run: hash the key column, or every feature column plus the target."""
    if cfg.key is not None and cfg.key == schema.target:
        raise ConfigError("split.key cannot be the target column")
    columns = [cfg.key] if cfg.key else sorted([*schema.features, schema.target])
    return SplitSpec(
        salt=cfg.salt, columns=columns, test_size=cfg.test_size, val_size=cfg.val_size, key=cfg.key
    )


def positions(frame: pd.DataFrame, spec: SplitSpec) -> np.ndarray:
    """Each row's place in [0, 1), from the salted hash of its split columns."""
    missing = [c for c in spec.columns if c not in frame.columns]
    if missing:
        raise DataError(f"split columns not in the data: {', '.join(missing[:5])}")
    key = hashlib.sha256(spec.salt.encode()).hexdigest()[:16]
    hashed = pd.util.hash_pandas_object(frame[spec.columns], index=False, hash_key=key)
    return hashed.to_numpy(dtype=np.uint64).astype(np.float64) / 2.0**64


def held_out(frame: pd.DataFrame, spec: SplitSpec) -> np.ndarray:
    """Boolean mask of the rows that ``spec`` puts in its test split."""
    return positions(frame, spec) < spec.test_size


def split_partition(
    frame: pd.DataFrame, spec: SplitSpec
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Split one partition's rows into train/validation/test by their hash (fresh indexes)."""
    u = positions(frame, spec)
    test_mask = u < spec.test_size
    val_mask = ~test_mask & (u < spec.test_size + spec.val_size)
    train_mask = ~test_mask & ~val_mask
    return tuple(frame.loc[m].reset_index(drop=True) for m in (train_mask, val_mask, test_mask))


SPLITS = ("train", "validation", "test")


def buckets(train: pd.DataFrame, spec: SplitSpec, n: int) -> np.ndarray:
    """Each training row's bucket in ``0 .. n - 1``, uniform and independent of the row order.

    Training rows hold the hash positions above ``test_size + val_size``; rescaled, the same
    hash spreads them evenly over ``n`` partitions, so each partition is a uniform sample of
    the training rows even when the source was sorted (by the target, say).
    """
    if n <= 1:
        return np.zeros(len(train), dtype=np.int64)
    low = spec.test_size + spec.val_size
    scaled = (positions(train, spec) - low) / (1.0 - low)
    return np.clip((scaled * n).astype(np.int64), 0, n - 1)


@dataclass
class SplitTally:
    """What the split's checks need, summed over partitions: rows and labels per split."""

    rows: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SPLITS, 0))
    labels: pd.Series | None = None  # rows per label, all splits
    trained: set[Any] = field(default_factory=set)  # labels with training rows

    def add(self, parts: tuple[pd.DataFrame, ...], target: str, classify: bool) -> None:
        """Count one partition's three splits."""
        for name, part in zip(SPLITS, parts, strict=True):
            self.rows[name] += len(part)
        if classify:
            counts = pd.concat([p[target] for p in parts]).value_counts()
            self.labels = counts if self.labels is None else self.labels.add(counts, fill_value=0)
            self.trained.update(parts[0][target].unique())

    def merge(self, other: SplitTally) -> None:
        """Add another partition's tally."""
        for name, rows in other.rows.items():
            self.rows[name] += rows
        if other.labels is not None:
            self.labels = (
                other.labels if self.labels is None else self.labels.add(other.labels, fill_value=0)
            )
        self.trained.update(other.trained)

    def check(self, spec: SplitSpec) -> None:
        """Refuse an empty split, or a class with no training rows.

        Raises:
            DataError: Naming the split or the classes.
        """
        total = sum(self.rows.values())
        for name, rows in self.rows.items():
            if not rows:
                raise DataError(
                    f"{total} rows are too few for a train/validation/test split: the "
                    f"{name} split got no rows (test_size={spec.test_size}, "
                    f"val_size={spec.val_size})"
                )
        if self.labels is not None:
            absent = [c for c in self.labels.index if c not in self.trained]
            if absent:
                shown = ", ".join(f"{c!r} ({int(self.labels[c])} rows)" for c in absent[:5])
                raise DataError(
                    f"class(es) {shown} got no training rows: too few rows of them to learn "
                    "from; add rows or remove that class"
                )

    def classes(self) -> list[int | float | str] | None:
        """The labels seen, sorted (:func:`class_labels`); ``None`` for a regression."""
        return None if self.labels is None else class_labels(pd.Series(self.labels.index))


def split_rows(
    frame: pd.DataFrame, spec: SplitSpec, n: int, target: str, classify: bool
) -> tuple[tuple[tuple[pd.DataFrame, np.ndarray], pd.DataFrame, pd.DataFrame], SplitTally]:
    """One partition split: ``((train, its buckets in 0 .. n - 1), val, test)`` and its tally."""
    parts = split_partition(frame, spec)
    tally = SplitTally()
    tally.add(parts, target, classify)
    return ((parts[0], buckets(parts[0], spec, n)), parts[1], parts[2]), tally


def split_frame(
    frame: pd.DataFrame, spec: SplitSpec, target: str, classify: bool
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Split a whole frame (one partition) into train/validation/test by their hash.

    Args:
        frame: Cleaned rows.
        spec: The split spec.
        target: Target column.
        classify: Whether every class must reach the training split.

    Returns:
        ``(train, val, test)`` frames with fresh indexes.

    Raises:
        DataError: A split is empty, or a class has no training rows.
    """
    parts = split_partition(frame, spec)
    tally = SplitTally()
    tally.add(parts, target, classify)
    tally.check(spec)
    return parts


def class_labels(target: pd.Series) -> list[int | float | str]:
    """Sorted distinct labels as plain Python values (ints/strings sort separately)."""
    values = [to_jsonable(v) for v in target.dropna().unique()]
    return sorted(values, key=lambda v: (isinstance(v, str), v))
