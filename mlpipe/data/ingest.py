"""One streaming pass over a source: a partitioned Parquet copy, its digest and its profile.

The pass reads the source in blocks (a CSV file, a Parquet file, a directory or glob of Parquet
files, or a built-in dataset as one block), writes them as ``part-*.parquet`` partitions, digests
every row and collects a :class:`Profile`: what schema inference and the pre-flight need, as
summaries that merge across partitions (``a.merge(b)``). A table that fits in memory is the
one-partition case of the same code.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mlpipe.config import DatasetSpec
from mlpipe.data.datasets import is_builtin, iter_source
from mlpipe.data.sampling import priorities, smallest
from mlpipe.errors import DataError
from mlpipe.io.progress import PROGRESS_SECONDS
from mlpipe.io.tables import PartitionWriter
from mlpipe.serving.schema import to_numbers

# Role and leak inference look at this many rows, drawn uniformly and kept in file order
# (sortedness survives); the checks that must be exact (target labels, identifiers'
# uniqueness, row counts) use every row.
SAMPLE_ROWS = 100_000
# Distinct target values counted exactly; beyond this the target is a measurement (regression).
MAX_TRACKED_LABELS = 100_000

log = logging.getLogger("mlpipe.load")


@dataclass
class Profile:
    """What one pass over a table learns, mergeable across partitions in row order.

    Attributes:
        rows: Rows seen.
        columns: Column names (every partition has the same).
        target: The target column profiled (``None``: not named, or not in the table).
        target_counts: Rows per distinct present target value; ``None`` once there are more
            than :data:`MAX_TRACKED_LABELS` (a measurement, not labels).
        abs_max: Largest absolute value of each numeric-typed column.
        sample: Up to ``sample_size`` rows drawn uniformly, in file order.
        sample_keys: Their :func:`priorities` (smallest kept).
        sample_size: Rows the sample keeps.
    """

    rows: int
    columns: list[str]
    target: str | None
    target_counts: pd.Series | None
    abs_max: dict[str, float]
    sample: pd.DataFrame
    sample_keys: np.ndarray
    sample_size: int = SAMPLE_ROWS

    @classmethod
    def of(
        cls, frame: pd.DataFrame, target: str | None, start: int = 0, size: int = SAMPLE_ROWS
    ) -> Profile:
        """Profile one partition whose first row is row ``start`` of the table."""
        keys = priorities(start, len(frame))
        keep = smallest(keys, size)
        counts = None
        if target is not None and target in frame.columns:
            counts = frame[target].value_counts(dropna=True, sort=False)
            counts = counts[counts > 0]  # a category column lists its unused levels too
            if len(counts) > MAX_TRACKED_LABELS:
                counts = None
        numeric = [
            c
            for c in frame.columns
            if pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])
        ]
        sizes = frame[numeric].abs().max() if numeric else pd.Series(dtype="float64")
        return cls(
            rows=len(frame),
            columns=[str(c) for c in frame.columns],
            target=target if target in frame.columns else None,
            target_counts=counts,
            abs_max={str(c): float(v) for c, v in sizes.items()},
            sample=frame.iloc[keep].reset_index(drop=True),
            sample_keys=keys[keep],
            sample_size=size,
        )

    def merge(self, later: Profile) -> Profile:
        """The profile of this partition followed by ``later``."""
        counts = None
        if self.target_counts is not None and later.target_counts is not None:
            counts = self.target_counts.add(later.target_counts, fill_value=0).astype("int64")
            if len(counts) > MAX_TRACKED_LABELS:
                counts = None
        sample = pd.concat([self.sample, later.sample], ignore_index=True)
        keys = np.concatenate([self.sample_keys, later.sample_keys])
        keep = smallest(keys, self.sample_size)
        abs_max = dict(self.abs_max)
        for col, value in later.abs_max.items():
            # NaN (an all-missing block) never wins a max.
            known = [v for v in (abs_max.get(col, np.nan), value) if not np.isnan(v)]
            abs_max[col] = max(known) if known else np.nan
        return Profile(
            rows=self.rows + later.rows,
            columns=self.columns,
            target=self.target,
            target_counts=counts,
            abs_max=abs_max,
            sample=sample.iloc[keep].reset_index(drop=True),
            sample_keys=keys[keep],
            sample_size=self.sample_size,
        )


def profile_frame(frame: pd.DataFrame, target: str | None) -> Profile:
    """The profile of a whole in-memory table (its one-partition case)."""
    return Profile.of(frame, target)


@dataclass
class _IdSummary:
    """Mergeable facts about one column that decide whether it identifies rows."""

    present: int = 0
    hashes: list[np.ndarray] = field(default_factory=list)
    integral: bool = True
    low: float = np.inf
    high: float = -np.inf
    increasing: bool = True
    decreasing: bool = True
    last: float | None = None

    def add(self, series: pd.Series, numeric: bool) -> None:
        present = series.dropna()
        self.present += len(present)
        if not len(present):
            return
        self.hashes.append(pd.util.hash_array(present.to_numpy()))
        if not numeric or not self.integral:
            return
        numbers = to_numbers(present)
        if numbers.isna().any() or not np.all(numbers == np.round(numbers)):
            self.integral = False
            return
        values = numbers.to_numpy()
        self.low, self.high = min(self.low, values.min()), max(self.high, values.max())
        first = values[0]
        self.increasing &= bool(np.all(np.diff(values) >= 0)) and (
            self.last is None or self.last <= first
        )
        self.decreasing &= bool(np.all(np.diff(values) <= 0)) and (
            self.last is None or self.last >= first
        )
        self.last = values[-1]

    def unique(self) -> bool:
        if not self.hashes:
            return True
        hashes = np.sort(np.concatenate(self.hashes))
        return not bool(np.any(hashes[1:] == hashes[:-1]))


def identifiers_in(
    partitions: Iterable[pd.DataFrame], candidates: dict[str, tuple[bool, bool]]
) -> set[str]:
    """Which candidate columns identify rows, judged exactly on every row.

    Args:
        partitions: The table, one partition at a time (only candidate columns are needed).
        candidates: Column -> ``(numeric, named like a key)``, from the sample.

    Returns:
        The columns whose present values are all distinct and, for numbers, integral and
        sorted, named like a key, or a run of consecutive integers (as
        :func:`mlpipe.data.roles.looks_like_identifier` decides on one frame).
    """
    summaries = {col: _IdSummary() for col in candidates}
    for part in partitions:
        for col, summary in summaries.items():
            summary.add(part[col], candidates[col][0])
    found = set()
    for col, s in summaries.items():
        numeric, named = candidates[col]
        if s.present < 10 or not s.unique():
            continue
        if not numeric:
            if named:
                found.add(col)
        elif (s.integral and (named or s.increasing or s.decreasing)) or (
            s.integral and s.high - s.low + 1 == s.present
        ):
            found.add(col)
    return found


@dataclass(frozen=True)
class Ingested:
    """A source copied into partitions: where, how many rows, its digest and profile."""

    path: str
    rows: int
    digest: str
    profile: Profile


@dataclass(frozen=True)
class Extra:
    """Tables read after the source (accepted monitoring batches), and whether the source is."""

    files: tuple[Path, ...] = ()
    reference: bool = True


def ingest(
    spec: DatasetSpec, out: str | Path, target: str | None, rows: int, extra: Extra = Extra()
) -> Ingested:
    """Copy the source into a partitioned Parquet dataset at ``out`` in one streaming pass.

    Memory holds one block plus the sample, whatever the source's size. Nothing is left at
    ``out`` when reading fails.

    Args:
        spec: The dataset.
        out: Where the partitions go.
        target: The target column, if known.
        rows: Rows per partition.
        extra: Parquet files appended after the source (their columns aligned to its), and
            whether the source itself is read.

    Raises:
        DataError: The source is unreadable, empty or has no columns; an extra file lacks a
            column of the source.
    """
    done = _ingest(spec, out, target, rows, None, extra)
    if isinstance(done, list):
        # Some blocks read a column as numbers (or flags) and others as text: read it as text
        # throughout, as a whole-file read does, instead of converting the numbers to text.
        log.info("reading %s as text in every block (mixed types)", ", ".join(done))
        done = _ingest(spec, out, target, rows, done, extra)
    assert isinstance(done, Ingested)
    return done


def _blocks(
    spec: DatasetSpec, rows: int, text: list[str] | None, extra: Extra
) -> Iterable[pd.DataFrame]:
    """The source's blocks, then the extra files' blocks conformed to the source's columns.

    The source's own first rows set the columns and their types, also when it is not read
    (``extra.reference`` false): a batch never decides what the training data looks like.
    """
    from mlpipe.data.privacy import masker
    from mlpipe.io.tables import conform, iter_table

    like: pd.DataFrame | None = None
    if extra.reference:
        for block in iter_source(spec, rows, text):
            like = block.head(0) if like is None else like
            yield block
    elif extra.files:
        blocks = iter_source(spec, 1000, text)
        like = next(iter(blocks)).head(0)
        blocks.close()  # type: ignore[attr-defined]
    mask = masker(spec.pii)  # batches kept before a column was listed in dataset.pii
    for path in extra.files:
        for block in iter_table(path, rows):
            assert like is not None
            try:
                yield mask(conform(block, like, f"accepted batch {path}"))
            except DataError as err:
                raise DataError(
                    f"{err}: remove it from the batch store or narrow schedule.window"
                ) from None


def _ingest(
    spec: DatasetSpec,
    out: str | Path,
    target: str | None,
    rows: int,
    text: list[str] | None,
    extra: Extra,
) -> Ingested | list[str]:
    """One pass; the CSV columns to read as text instead, if it found any (nothing kept)."""
    import shutil

    from mlpipe.io.sources import is_database
    from mlpipe.io.tables import CSV_SUFFIXES, is_dataset

    csv = not is_builtin(spec.source) and not is_dataset(spec.source)
    csv = csv and Path(spec.source).suffix.lower() in CSV_SUFFIXES
    profile: Profile | None = None
    started = time.monotonic()
    report = started + PROGRESS_SECONDS
    with PartitionWriter(out, rows, digest=True) as writer:
        for block in _blocks(spec, rows, text, extra):
            if block.shape[1] == 0:
                raise DataError(f"data file has no columns: {spec.source}")
            part = Profile.of(block, target, start=profile.rows if profile else 0)
            profile = part if profile is None else profile.merge(part)
            writer.write(block)
            if time.monotonic() >= report:
                log.info("read %d rows (%.0f s)", profile.rows, time.monotonic() - started)
                report += PROGRESS_SECONDS
        if profile is None or profile.rows == 0:
            if not extra.reference:
                raise DataError(
                    "the training window holds no rows: schedule.window.reference is false "
                    "and no accepted batch is in the window"
                )
            if is_database(spec.source):
                what = f"table {spec.table}" if spec.table else "dataset.query"
                raise DataError(f"{what} returned no rows from {spec.source}")
            raise DataError(f"data file has a header but no rows: {spec.source}")
        path = writer.commit()
    if csv and writer.as_text and text is None:
        shutil.rmtree(path, ignore_errors=True)
        return writer.as_text
    assert writer.digest is not None  # asked for above
    return Ingested(path=path, rows=profile.rows, digest=writer.digest.hexdigest(), profile=profile)
