"""Column roles, task inference and type coercion.

Pure pandas and pydantic: this module is also shipped inside every registered model, so serving
coerces raw rows exactly as training did. It must not import Prefect, MLflow or Great Expectations.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

TaskType = Literal["binary", "multiclass", "regression"]

# A text column whose values parse as numbers this often is a numeric column with typos.
NUMERIC_PARSE_SHARE = 0.95
# An integer target with at most this many distinct values is treated as class labels.
MAX_INTEGER_CLASSES = 20


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

    @property
    def features(self) -> list[str]:
        """All feature columns, numeric first."""
        return [*self.numeric, *self.categorical]


def looks_numeric(series: pd.Series) -> bool:
    """Return whether a column holds numbers (possibly stored as text with a few bad values)."""
    if pd.api.types.is_bool_dtype(series):
        return False
    if pd.api.types.is_numeric_dtype(series):
        return True
    if pd.api.types.is_datetime64_any_dtype(series):
        return False
    present = series.dropna()
    if present.empty:
        return False
    parsed = pd.to_numeric(present.astype("str").str.strip(), errors="coerce")
    return bool(parsed.notna().mean() >= NUMERIC_PARSE_SHARE)


def looks_like_dates(series: pd.Series) -> bool:
    """Return whether a text column holds dates (``2024-01-31``, ``31/01/2024 10:00``...)."""
    if pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
        return False
    present = series.dropna().astype("str").str.strip()
    if present.empty or not present.str.contains(r"\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}").all():
        return False
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "could not infer format" is the point of the test
        parsed = pd.to_datetime(present, errors="coerce", format="mixed")
    return bool(parsed.notna().mean() >= NUMERIC_PARSE_SHARE)


def infer_task(target: pd.Series) -> TaskType:
    """Infer the learning task from the target column.

    Text or boolean targets are classification; numbers are classification when they are
    integer-valued with few distinct values, regression otherwise.

    Args:
        target: The target column (missing values are ignored).

    Returns:
        ``binary``, ``multiclass`` or ``regression``.
    """
    present = target.dropna()
    n_unique = present.nunique()
    if not looks_numeric(present):
        return "binary" if n_unique <= 2 else "multiclass"
    values = pd.to_numeric(present.astype("str").str.strip(), errors="coerce").dropna()
    integer_valued = bool(np.all(np.isfinite(values)) and np.all(values == np.round(values)))
    if integer_valued and n_unique <= MAX_INTEGER_CLASSES:
        return "binary" if n_unique <= 2 else "multiclass"
    return "regression"


def infer_roles(
    frame: pd.DataFrame, target: str, exclude: list[str]
) -> tuple[list[str], list[str], list[str]]:
    """Split the feature columns of a frame into numeric, categorical and ignored.

    Dates and columns that look like identifiers or free text (almost every value distinct)
    are ignored rather than one-hot encoded into thousands of columns.

    Args:
        frame: The raw table.
        target: Target column, never a feature.
        exclude: Columns the user asked to ignore.

    Returns:
        ``(numeric, categorical, ignored)`` column lists in table order.
    """
    numeric: list[str] = []
    categorical: list[str] = []
    ignored: list[str] = list(exclude)
    for col in frame.columns:
        if col == target or col in exclude:
            continue
        series = frame[col]
        if pd.api.types.is_datetime64_any_dtype(series) or looks_like_dates(series):
            ignored.append(col)
        elif looks_numeric(series):
            numeric.append(col)
        else:
            present = series.dropna()
            distinct = present.nunique()
            if len(present) >= 50 and distinct > 0.5 * len(present):
                ignored.append(col)
            else:
                categorical.append(col)
    return numeric, categorical, ignored


def coerce_features(frame: pd.DataFrame, schema: Schema) -> tuple[pd.DataFrame, dict[str, int]]:
    """Coerce feature columns to their role's type; return the frame and per-column counts.

    Numeric columns become float64 (unparseable text and +/-inf become NaN); categorical columns
    become Python strings with NaN for missing. Columns absent from ``frame`` are added as
    missing so that serving tolerates a dropped optional column the imputer can fill.

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
        if pd.api.types.is_numeric_dtype(raw) and not pd.api.types.is_bool_dtype(raw):
            values = raw.astype("float64")
        else:
            values = pd.to_numeric(raw.astype("str").str.strip(), errors="coerce").astype("float64")
        values = values.where(np.isfinite(values))
        lost = int((raw.notna() & values.isna()).sum())
        if lost:
            counts[col] = lost
        out[col] = values
    for col in schema.categorical:
        if col not in out.columns:
            out[col] = np.nan
        out[col] = out[col].astype("str").astype(object)
    return out, counts


def coerce_target(series: pd.Series, task: TaskType) -> pd.Series:
    """Coerce the target column to the type its task needs.

    Regression targets become float; classification labels become ints when they are
    integer-valued numbers, else strings. Unparseable values become missing.

    Args:
        series: Raw target column.
        task: Learning task.

    Returns:
        The coerced column (object dtype for labels, float64 for regression).
    """
    if task == "regression":
        values = pd.to_numeric(series, errors="coerce").astype("float64")
        return values.where(np.isfinite(values))
    if looks_numeric(series.dropna()) and not pd.api.types.is_bool_dtype(series):
        values = pd.to_numeric(series, errors="coerce")
        finite = values.dropna()
        if np.all(finite == np.round(finite)):
            # Built element by element: Series.map would re-infer float64 for ints + NaN.
            labels = [int(v) if pd.notna(v) else np.nan for v in values]
            return pd.Series(labels, index=series.index, dtype=object)
        return values.astype(object)
    return series.astype("str").astype(object)


def find_leaks(frame: pd.DataFrame, target: str, columns: list[str]) -> list[str]:
    """Columns that restate the target.

    Identical, a one-to-one relabelling or (numbers) perfectly correlated with the target:
    training on them would report a useless model as perfect.

    Args:
        frame: The raw table.
        target: Target column.
        columns: Candidate feature columns.

    Returns:
        The leaking columns, in the order given.
    """
    leaks = []
    y = frame[target]
    for col in columns:
        both = frame[[col, target]].dropna()
        if len(both) < 10 or both[target].nunique() < 2:
            continue
        x_col, y_col = both[col], both[target]
        if looks_numeric(x_col) and looks_numeric(y_col) and y.nunique() > MAX_INTEGER_CLASSES:
            xs = pd.to_numeric(x_col.astype("str"), errors="coerce")
            ys = pd.to_numeric(y_col.astype("str"), errors="coerce")
            if xs.std() > 0 and abs(float(xs.corr(ys))) >= 0.9999:
                leaks.append(col)
            continue
        pairs = pd.DataFrame({"x": x_col.astype("str"), "y": y_col.astype("str")})
        one_to_one = (
            pairs.groupby("x")["y"].nunique().max() == 1
            and pairs.groupby("y")["x"].nunique().max() == 1
        )
        if one_to_one:
            leaks.append(col)
    return leaks


def to_jsonable(value: Any) -> Any:
    """Convert numpy scalars to plain Python values (for JSON and MLflow)."""
    if isinstance(value, np.generic):
        return value.item()
    return value
