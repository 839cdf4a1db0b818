"""Train/validation/test split by a salted hash of each row.

A row lands in a split by the hash of its content (or of its ``split.key`` column) and the salt,
so its split does not depend on the seed, the row order or the other rows. Every version trained
with the same salt holds out the same rows, and any version's held-out rows can be recomputed
from its :class:`SplitSpec` (stored with the version): promotion compares champion and
challenger only on rows neither of them trained on.
"""

from __future__ import annotations

import hashlib

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


def split_frame(
    frame: pd.DataFrame, spec: SplitSpec, target: str, classify: bool
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Split rows into train/validation/test by their hash.

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
    u = positions(frame, spec)
    test_mask = u < spec.test_size
    val_mask = ~test_mask & (u < spec.test_size + spec.val_size)
    train_mask = ~test_mask & ~val_mask
    parts = {"train": train_mask, "validation": val_mask, "test": test_mask}
    for name, mask in parts.items():
        if not mask.any():
            raise DataError(
                f"{len(frame)} rows are too few for a train/validation/test split: the "
                f"{name} split got no rows (test_size={spec.test_size}, "
                f"val_size={spec.val_size})"
            )
    if classify:
        in_train = set(frame.loc[train_mask, target].unique())
        absent = [c for c in frame[target].unique() if c not in in_train]
        if absent:
            counts = frame[target].value_counts()
            shown = ", ".join(f"{c!r} ({counts[c]} rows)" for c in absent[:5])
            raise DataError(
                f"class(es) {shown} got no training rows: too few rows of them to learn "
                "from; add rows or remove that class"
            )
    train, val, test = (
        frame.loc[m].reset_index(drop=True) for m in (train_mask, val_mask, test_mask)
    )
    return train, val, test


def class_labels(target: pd.Series) -> list[int | float | str]:
    """Sorted distinct labels as plain Python values (ints/strings sort separately)."""
    values = [to_jsonable(v) for v in target.dropna().unique()]
    return sorted(values, key=lambda v: (isinstance(v, str), v))
