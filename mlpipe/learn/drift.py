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

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict
from scipy import stats
from scipy.spatial.distance import jensenshannon

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


def _numeric_shares(values: pd.Series, edges: list[float]) -> np.ndarray:
    present = values.dropna().to_numpy(dtype=float)
    counts = np.bincount(np.searchsorted(edges, present, side="right"), minlength=len(edges) + 1)
    total = max(len(values), 1)
    return np.append(counts, len(values) - len(present)) / total


def _categorical_shares(values: pd.Series, known: list[str]) -> dict[str, float]:
    total = max(len(values), 1)
    text = values.dropna().astype(str)
    counts = text.value_counts()
    shares = {k: float(counts.get(k, 0)) / total for k in known if k not in (OTHER, MISSING)}
    shares[OTHER] = float(counts[~counts.index.isin(known)].sum()) / total
    shares[MISSING] = float(values.isna().sum()) / total
    return shares


def build_profile(frame: pd.DataFrame, schema: Schema, bins: int = 10) -> Profile:
    """Profile the feature columns of (coerced) training rows.

    Args:
        frame: Training rows after cleaning (numeric columns are floats).
        schema: Column roles.
        bins: Number of quantile bins per numeric column.

    Returns:
        The profile.
    """
    numeric: dict[str, NumericProfile] = {}
    for col in schema.numeric:
        values = pd.to_numeric(frame[col], errors="coerce")
        present = values.dropna()
        if present.empty:
            continue
        edges = np.unique(np.quantile(present, np.linspace(0, 1, bins + 1))[1:-1]).tolist()
        numeric[col] = NumericProfile(
            edges=edges,
            shares=_numeric_shares(values, edges).tolist(),
            quantiles=np.quantile(present, np.linspace(0, 1, 101)).tolist(),
            std=float(present.std()) if len(present) > 1 else 0.0,
        )
    categorical: dict[str, CategoricalProfile] = {}
    for col in schema.categorical:
        top = frame[col].dropna().astype(str).value_counts().index[:MAX_CATEGORIES].tolist()
        categorical[col] = CategoricalProfile(shares=_categorical_shares(frame[col], top))
    return Profile(rows=len(frame), numeric=numeric, categorical=categorical)


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
    profile: Profile, frame: pd.DataFrame, threshold: float = 0.2, alpha: float = ALPHA
) -> DriftReport:
    """Measure drift of ``frame`` (coerced feature columns) against a reference profile.

    Args:
        profile: The champion's training profile.
        frame: New rows; columns absent from ``frame`` are skipped.
        threshold: PSI above which a (significant) shift counts as drift.
        alpha: Significance level after Benjamini-Hochberg correction.

    Returns:
        The drift report.
    """
    results: list[ColumnDrift] = []
    for col, num in profile.numeric.items():
        if col not in frame.columns:
            continue
        values = pd.to_numeric(frame[col], errors="coerce")
        psi, p_value = _psi_and_p(
            np.asarray(num.shares), _numeric_shares(values, num.edges), len(values)
        )
        present = values.dropna()
        distance = 0.0
        if len(present) and num.std > 0:
            new_q = np.quantile(present, np.linspace(0, 1, 101))
            distance = float(stats.wasserstein_distance(num.quantiles, new_q)) / num.std
        results.append(
            ColumnDrift(column=col, kind="numeric", psi=psi, distance=distance, p_value=p_value)
        )
    for col, cat in profile.categorical.items():
        if col not in frame.columns:
            continue
        keys = list(cat.shares)
        new = _categorical_shares(frame[col], keys)
        ref_v = np.array([cat.shares[k] for k in keys])
        new_v = np.array([new[k] for k in keys])
        psi, p_value = _psi_and_p(ref_v, new_v, len(frame))
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
        rows=len(frame), reference_rows=profile.rows, threshold=threshold, columns=results
    )
