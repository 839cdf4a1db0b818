"""Resolved column roles and type coercion shared by training and serving.

Serving coerces raw rows exactly as training did, so this module ships inside every model.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

TaskType = Literal["binary", "multiclass", "regression"]


class Schema(BaseModel):
    """Resolved column roles of a dataset; small, JSON-serialisable, passed between tasks.

    Attributes:
        name: Dataset short name.
        target: Target column.
        task: Learning task.
        numeric: Numeric feature columns (pixel columns first, in row-major order, for images).
        categorical: Categorical feature columns.
        ignore: Columns present in the data but never used as features.
        image_shape: Height and width for image datasets.
        pixel_columns: Pixel columns for image datasets.
        leakage: Columns that restate the target (moved to ``ignore``).
        identifiers: Columns recognised as row identifiers (moved to ``ignore``).
        pii: Columns of personal data (``dataset.pii``; in ``ignore``, hashed wherever rows
            are stored).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    target: str
    task: TaskType
    numeric: list[str]
    categorical: list[str]
    ignore: list[str] = []
    image_shape: tuple[int, int] | None = None
    pixel_columns: list[str] = []
    leakage: list[str] = []
    identifiers: list[str] = []
    pii: list[str] = []

    @property
    def features(self) -> list[str]:
        """All feature columns, numeric first."""
        return [*self.numeric, *self.categorical]


def to_numbers(series: pd.Series) -> pd.Series:
    """A column as float64: numbers stay, text is parsed, anything else (and +/-inf) is NaN."""
    if pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
        values = series.astype("float64")
    elif series.dtype == object and pd.api.types.infer_dtype(series) == "boolean":
        # Flags with a missing value read as objects (True/False/None): still 1/0.
        values = series.astype("float64")
    else:
        text = series.astype("str").str.strip()
        values = pd.to_numeric(text, errors="coerce").astype("float64")
    return values.where(np.isfinite(values))


def coerce_features(frame: pd.DataFrame, schema: Schema) -> tuple[pd.DataFrame, dict[str, int]]:
    """Coerce feature columns to their role's type; return the frame and per-column counts.

    Numeric columns become float64 (unparseable text and +/-inf become NaN); categorical columns
    become Python strings with NaN for missing. Columns absent from ``frame`` are added as
    missing so that serving tolerates a dropped optional column the imputer can fill. Other
    columns are passed through unchanged.

    Args:
        frame: Raw rows (not modified).
        schema: Resolved roles.

    Returns:
        ``(coerced, counts)`` where ``counts[col]`` is how many present values became missing.
    """
    out = frame.copy()
    counts: dict[str, int] = {}
    for col in schema.numeric:
        if col not in out.columns:
            out[col] = np.nan
            continue
        raw = out[col]
        values = to_numbers(raw)
        values = values.where(np.isfinite(values))
        lost = int((raw.notna() & values.isna()).sum())
        if lost:
            counts[col] = lost
        out[col] = values
    for col in schema.categorical:
        if col not in out.columns:
            out[col] = np.nan
        # Stripped: "male " and "male" are one category in training and in serving alike.
        out[col] = out[col].astype("str").str.strip().astype(object)
    return out, counts


def coerce_target(series: pd.Series, task: TaskType) -> pd.Series:
    """Coerce the target column to the type its task needs.

    Regression targets become float; classification labels become ints when they are
    integer-valued numbers, else strings without surrounding spaces. Unparseable values become
    missing.

    Args:
        series: Raw target column.
        task: Learning task.

    Returns:
        The coerced column (object dtype for labels, float64 for regression).
    """
    if task == "regression":
        values = to_numbers(series)
        return values.where(np.isfinite(values))
    present = series.dropna()
    if pd.api.types.is_bool_dtype(series) or to_numbers(present.head(1000)).isna().any():
        # Labels that are not all numbers (seen in the first rows: no need to parse them all).
        return series.astype("str").str.strip().astype(object)
    numbers = to_numbers(present)
    if len(present) and numbers.notna().all():
        values = to_numbers(series)
        finite = values.dropna()
        if np.all(finite == np.round(finite)):
            # Built element by element: Series.map would re-infer float64 for ints + NaN.
            labels = [int(v) if pd.notna(v) else np.nan for v in values]
            return pd.Series(labels, index=series.index, dtype=object)
        return values.astype(object)
    return series.astype("str").str.strip().astype(object)


def to_jsonable(value: Any) -> Any:
    """Convert numpy scalars to plain Python values (for JSON and MLflow)."""
    if isinstance(value, np.generic):
        return value.item()
    return value
