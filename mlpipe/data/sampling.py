"""Uniform samples of tables read in partitions, the same whatever the partition sizes.

Each row gets a pseudo-random key that is a pure function of its position in the table (and a
seed); a sample of ``size`` rows is the rows with the smallest keys (bottom-k sampling). Keeping
the smallest keys of each partition and then of their union gives the sample of the whole
table, so the summary is mergeable and needs memory for ``size`` rows only.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def priorities(start: int, rows: int, seed: int = 0) -> np.ndarray:
    """A pseudo-random 64-bit key per row, a pure function of its position and ``seed``.

    The sample is the rows with the smallest keys, so it is the same whatever the partition
    sizes (splitmix64 of the row's position).
    """
    with np.errstate(over="ignore"):
        x = np.arange(start, start + rows, dtype=np.uint64) + np.uint64(seed + 1) * _GOLDEN
        x ^= x >> np.uint64(30)
        x *= np.uint64(0xBF58476D1CE4E5B9)
        x ^= x >> np.uint64(27)
        x *= np.uint64(0x94D049BB133111EB)
        x ^= x >> np.uint64(31)
    return x


def smallest(keys: np.ndarray, size: int) -> np.ndarray:
    """Positions of the ``size`` smallest keys, in ascending position (all when fewer)."""
    if len(keys) <= size:
        return np.arange(len(keys))
    return np.sort(np.argpartition(keys, size - 1)[:size])


def _take(values: Any, keep: np.ndarray) -> Any:
    if isinstance(values, pd.DataFrame):
        return values.iloc[keep].reset_index(drop=True)
    return np.asarray(values)[keep]


def _join(first: Any, later: Any) -> Any:
    if isinstance(first, pd.DataFrame):
        return pd.concat([first, later], ignore_index=True)
    return np.concatenate([first, later])


class RowSample:
    """A uniform sample of at most ``size`` rows of a table added partition by partition.

    Each :meth:`add` brings row-aligned parts of one partition (a frame of rows, arrays of
    outputs, ...); :attr:`parts` holds the sampled rows of each part, in table order.
    """

    def __init__(self, size: int, seed: int = 0) -> None:
        """Keep at most ``size`` rows, drawn by keys seeded with ``seed``."""
        self.size = size
        self.seed = seed
        self.keys = np.empty(0, dtype=np.uint64)
        self.parts: dict[str, Any] = {}
        self.rows = 0  # rows offered so far

    def add(self, start: int | None = None, **parts: Any) -> None:
        """Offer the next partition's rows; every part has one entry per row, in row order.

        ``start``: the position of the partition's first row in the table (default: right
        after the rows offered so far); a sample of a partition alone, merged later
        (:meth:`merge`), needs it.
        """
        n = len(next(iter(parts.values())))
        if any(len(v) != n for v in parts.values()):
            sizes = ", ".join(f"{k}={len(v)}" for k, v in parts.items())
            raise ValueError(f"parts of one partition differ in length: {sizes}")
        keys = priorities(self.rows if start is None else start, n, self.seed)
        self.rows += n
        keep = smallest(keys, self.size)  # a partition never holds more than the sample
        self._keep(keys[keep], {k: _take(v, keep) for k, v in parts.items()})

    def merge(self, later: RowSample) -> None:
        """Add the sample of the rows that follow (same size and seed): the sample of both."""
        if (later.size, later.seed) != (self.size, self.seed):
            raise ValueError("only samples of the same size and seed merge")
        self.rows += later.rows
        if later.parts:
            self._keep(later.keys, later.parts)

    def _keep(self, keys: np.ndarray, parts: dict[str, Any]) -> None:
        if self.parts:
            keys = np.concatenate([self.keys, keys])
            parts = {k: _join(self.parts[k], v) for k, v in parts.items()}
            keep = smallest(keys, self.size)
            keys, parts = keys[keep], {k: _take(v, keep) for k, v in parts.items()}
        self.keys, self.parts = keys, parts

    @property
    def complete(self) -> bool:
        """Whether every row offered is in the sample."""
        return len(self.keys) == self.rows
