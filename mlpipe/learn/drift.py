"""Reference profiles of training data and drift of new data against them.

A profile is compact (quantile bins and 101 quantiles per numeric column, frequencies per
categorical one) and JSON, stored with every registered model version. Drift per column is an
effect size — the population stability index (PSI) — with a chi-square test on the same bins
as a guard against noise on small samples; p-values are corrected for the number of columns
(Benjamini-Hochberg). A column drifts only when the effect is large (PSI above the threshold)
AND significant, so large samples do not flag trivial shifts.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from typing import TypeAlias

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict
from scipy import stats
from scipy.spatial.distance import jensenshannon

from mlpipe.data.sampling import RowSample
from mlpipe.serving.schema import Schema

EPS = 1e-4  # smoothing of empty bins (PSI and chi-square need non-zero shares)
MAX_CATEGORIES = 50
OTHER = "__other__"
MISSING = "__missing__"
ALPHA = 0.05


class NumericProfile(BaseModel):
    """Quantile bins of a numeric column."""

    model_config = ConfigDict(frozen=True)

    edges: list[float]
    shares: list[float]  # one per bin, then the missing share last
    quantiles: list[float]  # 0%, 1%, ..., 100%
    std: float


class CategoricalProfile(BaseModel):
    """Frequencies of a categorical column (top categories, others pooled, missing)."""

    model_config = ConfigDict(frozen=True)

    shares: dict[str, float]


class Profile(BaseModel):
    """Reference profile of the training data of one model version."""

    model_config = ConfigDict(frozen=True)

    rows: int
    numeric: dict[str, NumericProfile]
    categorical: dict[str, CategoricalProfile]


class ColumnDrift(BaseModel):
    """Drift of one column."""

    model_config = ConfigDict(frozen=True)

    column: str
    kind: str
    psi: float
    distance: float  # numeric: Wasserstein / reference std; categorical: Jensen-Shannon
    p_value: float
    p_adjusted: float = 1.0
    drifted: bool = False


class DriftReport(BaseModel):
    """Per-column drift and the overall verdict."""

    model_config = ConfigDict(frozen=True)

    rows: int
    reference_rows: int
    threshold: float
    columns: list[ColumnDrift]

    @property
    def drifted(self) -> list[str]:
        """Names of the drifted columns."""
        return [c.column for c in self.columns if c.drifted]

    def table(self) -> pd.DataFrame:
        """The per-column results as a frame (for MLflow tables and printing)."""
        return pd.DataFrame([c.model_dump() for c in self.columns])

    def markdown(self) -> str:
        """A Markdown summary with one row per column."""
        verdict = f"drift in {', '.join(self.drifted)}" if self.drifted else "no drift"
        lines = [
            f"# Drift against the champion's training data: {verdict}",
            "",
            f"{self.rows} rows vs {self.reference_rows} reference rows; a column drifts when "
            f"PSI > {self.threshold} and the BH-adjusted p-value < {ALPHA}.",
            "",
            "| column | kind | PSI | distance | p (BH) | drifted |",
            "|---|---|---|---|---|---|",
        ]
        for c in sorted(self.columns, key=lambda c: -c.psi):
            lines.append(
                f"| {c.column} | {c.kind} | {c.psi:.3f} | {c.distance:.3f} | "
                f"{c.p_adjusted:.2g} | {'**yes**' if c.drifted else 'no'} |"
            )
        return "\n".join(lines) + "\n"


Partitions: TypeAlias = pd.DataFrame | Iterable[pd.DataFrame]
# Rows whose numeric values give the new data's quantiles (the Wasserstein distance) at most: a
# uniform sample beyond. Shares, PSI and the chi-square test count every row.
QUANTILE_SAMPLE_ROWS = 200_000
# Training rows a numeric column's reference profile is built from at most (uniform sample).
PROFILE_SAMPLE_ROWS = 1_000_000
PROFILE_SEED = 4


def _parts(frames: Partitions) -> Iterator[pd.DataFrame]:
    """A frame is the one-partition case."""
    if isinstance(frames, pd.DataFrame):
        yield frames
    else:
        yield from frames


class _Counts:
    """Mergeable counts of a table seen in partitions.

    Per numeric column the rows per bin (then the missing ones); per categorical column the
    rows per present value and the missing rows.
    """

    def __init__(self, edges: dict[str, list[float]], categorical: list[str]) -> None:
        self.rows = 0
        self.edges = edges
        self.bins = {c: np.zeros(len(e) + 2, dtype=np.int64) for c, e in edges.items()}
        self.levels = {c: pd.Series(dtype="int64") for c in categorical}
        self.missing = dict.fromkeys(categorical, 0)

    def add(self, frame: pd.DataFrame) -> None:
        self.rows += len(frame)
        for col, edges in self.edges.items():
            if col not in frame.columns:  # absent from this partition: its rows are missing
                self.bins[col][-1] += len(frame)
                continue
            values = pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=float)
            present = values[~np.isnan(values)]
            at = np.searchsorted(edges, present, side="right")
            self.bins[col][: len(edges) + 1] += np.bincount(at, minlength=len(edges) + 1)
            self.bins[col][-1] += len(values) - len(present)
        for col in self.levels:
            if col not in frame.columns:
                self.missing[col] += len(frame)
                continue
            text = frame[col].dropna().astype(str)
            self.levels[col] = self.levels[col].add(text.value_counts(), fill_value=0)
            self.missing[col] += int(frame[col].isna().sum())

    def numeric_shares(self, col: str) -> np.ndarray:
        return self.bins[col] / max(self.rows, 1)

    def top(self, col: str, limit: int) -> list[str]:
        """The ``limit`` most frequent values; ties by value, the same for any partitioning."""
        counts = self.levels[col]
        order = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        return [str(k) for k, _ in order[:limit]]

    def categorical_shares(self, col: str, known: list[str]) -> dict[str, float]:
        total = max(self.rows, 1)
        counts = self.levels[col]
        named = [k for k in known if k not in (OTHER, MISSING)]
        shares = {k: float(counts.get(k, 0)) / total for k in named}
        shares[OTHER] = float(counts[~counts.index.isin(named)].sum()) / total
        shares[MISSING] = float(self.missing[col]) / total
        return shares


def build_profile(frames: Partitions, schema: Schema, bins: int = 10) -> Profile:
    """Profile the feature columns of (coerced) training rows, one partition at a time.

    Categorical shares count every row. Numeric columns are profiled (quantile bins, their
    shares, 101 quantiles, the spread) on a uniform sample of at most
    :data:`PROFILE_SAMPLE_ROWS` rows drawn over all partitions: the whole table up to that
    size, an estimate within about 0.1% per share beyond.

    Args:
        frames: Training rows after cleaning (numeric columns are floats): a frame, or its
            partitions.
        schema: Column roles.
        bins: Number of quantile bins per numeric column.

    Returns:
        The profile.
    """
    counts = _Counts({}, list(schema.categorical))
    sample = RowSample(PROFILE_SAMPLE_ROWS, seed=PROFILE_SEED)
    for frame in _parts(frames):
        counts.add(frame)
        numbers = pd.DataFrame(
            {
                c: pd.to_numeric(frame[c], errors="coerce") if c in frame.columns else np.nan
                for c in schema.numeric
            },
            index=frame.index,
        )
        sample.add(rows=numbers)
    rows = sample.parts.get("rows", pd.DataFrame(columns=schema.numeric))
    numeric: dict[str, NumericProfile] = {}
    for col in schema.numeric:
        values = rows[col].astype(float)
        present = values.dropna()
        if present.empty:
            continue
        edges = np.unique(np.quantile(present, np.linspace(0, 1, bins + 1))[1:-1]).tolist()
        at = np.searchsorted(edges, present.to_numpy(), side="right")
        shares = np.append(np.bincount(at, minlength=len(edges) + 1), len(values) - len(present))
        numeric[col] = NumericProfile(
            edges=edges,
            shares=(shares / len(values)).tolist(),
            quantiles=np.quantile(present, np.linspace(0, 1, 101)).tolist(),
            std=float(present.std()) if len(present) > 1 else 0.0,
        )
    categorical = {
        col: CategoricalProfile(
            shares=counts.categorical_shares(col, counts.top(col, MAX_CATEGORIES))
        )
        for col in schema.categorical
    }
    return Profile(rows=counts.rows, numeric=numeric, categorical=categorical)


def _psi_and_p(ref: np.ndarray, new: np.ndarray, n_new: int) -> tuple[float, float]:
    p = np.clip(ref, EPS, None)
    q = np.clip(new, EPS, None)
    p, q = p / p.sum(), q / q.sum()
    psi = float(np.sum((q - p) * np.log(q / p)))
    if n_new == 0:
        return psi, 1.0
    observed = q * n_new
    expected = p * n_new
    p_value = float(stats.chisquare(observed, expected).pvalue)
    return psi, p_value if math.isfinite(p_value) else 1.0


def compare(
    profile: Profile, frames: Partitions, threshold: float = 0.2, alpha: float = ALPHA
) -> DriftReport:
    """Measure drift of new rows (coerced feature columns) against a reference profile.

    Args:
        profile: The champion's training profile.
        frames: New rows: a frame, or its partitions (read once); columns absent from them
            are skipped.
        threshold: PSI above which a (significant) shift counts as drift.
        alpha: Significance level after Benjamini-Hochberg correction.

    Returns:
        The drift report.
    """
    counts = _Counts({c: p.edges for c, p in profile.numeric.items()}, list(profile.categorical))
    sample = RowSample(QUANTILE_SAMPLE_ROWS)
    columns: set[str] = set()
    for frame in _parts(frames):
        columns.update(frame.columns)
        counts.add(frame)
        present = [c for c in profile.numeric if c in frame.columns]
        sample.add(rows=frame[present].apply(pd.to_numeric, errors="coerce"))
    values = sample.parts.get("rows", pd.DataFrame())
    results: list[ColumnDrift] = []
    for col, num in profile.numeric.items():
        if col not in columns:
            continue
        psi, p_value = _psi_and_p(np.asarray(num.shares), counts.numeric_shares(col), counts.rows)
        present = values[col].dropna() if col in values.columns else pd.Series(dtype=float)
        distance = 0.0
        if len(present) and num.std > 0:
            new_q = np.quantile(present, np.linspace(0, 1, 101))
            distance = float(stats.wasserstein_distance(num.quantiles, new_q)) / num.std
        results.append(
            ColumnDrift(column=col, kind="numeric", psi=psi, distance=distance, p_value=p_value)
        )
    for col, cat in profile.categorical.items():
        if col not in columns:
            continue
        keys = list(cat.shares)
        new = counts.categorical_shares(col, keys)
        ref_v = np.array([cat.shares[k] for k in keys])
        new_v = np.array([new[k] for k in keys])
        psi, p_value = _psi_and_p(ref_v, new_v, counts.rows)
        js = float(jensenshannon(np.clip(ref_v, EPS, None), np.clip(new_v, EPS, None), base=2))
        results.append(
            ColumnDrift(column=col, kind="categorical", psi=psi, distance=js, p_value=p_value)
        )
    if results:
        adjusted = stats.false_discovery_control([r.p_value for r in results], method="bh")
        results = [
            r.model_copy(
                update={
                    "p_adjusted": float(a),
                    "drifted": bool(r.psi > threshold and a < alpha),
                }
            )
            for r, a in zip(results, adjusted, strict=True)
        ]
    return DriftReport(
        rows=counts.rows, reference_rows=profile.rows, threshold=threshold, columns=results
    )
