"""Feature engineering: a scikit-learn ColumnTransformer fitted on the training split only.

Transformation is partition-wise (:func:`transform_partition`: a frame in, a frame out), so the
same fitted object can be mapped over partitions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler, OneHotEncoder, OrdinalEncoder, StandardScaler

from mlpipe.config import FeatureConfig
from mlpipe.data.sampling import RowSample
from mlpipe.errors import DataError
from mlpipe.serving.schema import Schema

# float32 (the network's input type) holds about +/-3.4e38; larger values are a units or
# parsing bug, and near that limit a scaler's sum of squares overflows already.
MAX_MAGNITUDE = 1e38
# What a missing category is imputed as (a level of its own).
MISSING_CATEGORY = "__missing__"


def build_preprocessor(schema: Schema, cfg: FeatureConfig) -> ColumnTransformer:
    """An unfitted ColumnTransformer: numeric impute+scale, categorical impute+encode.

    Numeric columns come first and keep their order, so for images the first
    ``height * width`` outputs are the pixels, row-major (the CNN relies on it).
    """
    numeric_steps: list[tuple[str, object]] = [
        ("impute", SimpleImputer(strategy=cfg.numeric_impute, keep_empty_features=True))
    ]
    scaler = cfg.scaler
    if scaler == "auto":
        scaler = "minmax" if schema.image_shape else "standard"
    if scaler == "standard":
        numeric_steps.append(("scale", StandardScaler()))
    elif scaler == "minmax":
        numeric_steps.append(("scale", MinMaxScaler()))
    if cfg.categorical_encoding == "onehot":
        encoder: object = OneHotEncoder(
            handle_unknown="infrequent_if_exist",
            max_categories=cfg.max_categories,
            sparse_output=False,
        )
    else:
        encoder = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1)
    categorical = Pipeline(
        [
            ("impute", SimpleImputer(strategy="constant", fill_value=MISSING_CATEGORY)),
            ("encode", encoder),
        ]
    )
    transformers = []
    if schema.numeric:
        transformers.append(("num", Pipeline(numeric_steps), list(schema.numeric)))
    if schema.categorical:
        transformers.append(("cat", categorical, list(schema.categorical)))
    return ColumnTransformer(transformers, remainder="drop", sparse_threshold=0.0)


def magnitude_problem(sizes: pd.Series) -> str | None:
    """Numeric features beyond what the network's float32 inputs can hold, as a message.

    Such values are a units or parsing bug; scaled, they overflow into NaN and would look
    like a diverged training.

    Args:
        sizes: Largest absolute value per numeric feature column.
    """
    huge = sizes[sizes > MAX_MAGNITUDE].sort_values(ascending=False)
    if not len(huge):
        return None
    named = ", ".join(f"{c} (up to {v:.3g})" for c, v in huge.head(5).items())
    return (
        f"feature values too large to learn from: {named}; rescale them (e.g. to other units) "
        "or list them in dataset.ignore"
    )


def check_magnitudes(frame: pd.DataFrame, schema: Schema) -> None:
    """Raise :class:`DataError` with :func:`magnitude_problem`'s message, if any."""
    present = [c for c in schema.numeric if c in frame.columns]
    problem = magnitude_problem(frame[present].apply(pd.to_numeric, errors="coerce").abs().max())
    if problem is not None:
        raise DataError(problem)


# Medians come from a uniform sample of this many training rows (keyed by row position, so
# the same whatever the partitions or processes): exact up to that many rows; beyond, the rank
# error is about 0.05%. A seeded sample, not a randomised sketch: the same data always gives
# the same preprocessor.
MEDIAN_SAMPLE_ROWS = 1_000_000
MEDIAN_SEED = 6


@dataclass
class _Moments:
    """Count, mean and sum of squared deviations (Chan's parallel merge), min and max."""

    n: int = 0
    mean: float = 0.0
    m2: float = 0.0
    low: float = np.inf
    high: float = -np.inf

    @classmethod
    def of(cls, values: np.ndarray) -> _Moments:
        if not len(values):
            return cls()
        mean = float(values.mean())
        return cls(
            len(values),
            mean,
            float(((values - mean) ** 2).sum()),
            float(values.min()),
            float(values.max()),
        )

    def merge(self, other: _Moments) -> _Moments:
        if not other.n:
            return self
        if not self.n:
            return other
        n = self.n + other.n
        delta = other.mean - self.mean
        return _Moments(
            n,
            self.mean + delta * other.n / n,
            self.m2 + other.m2 + delta**2 * self.n * other.n / n,
            min(self.low, other.low),
            max(self.high, other.high),
        )

    def with_filled(self, missing: int, value: float) -> _Moments:
        """The moments once ``missing`` values are imputed with ``value``."""
        return self.merge(_Moments(missing, value, 0.0, value, value)) if missing else self


@dataclass
class FeatureStats:
    """What fitting the preprocessor needs from the training rows, mergeable (``a.merge(b)``).

    Per numeric column its moments and median; per categorical column the rows of each value
    (missing ones under the imputer's ``__missing__``).
    """

    rows: int = 0
    moments: dict[str, _Moments] = field(default_factory=dict)
    sample: RowSample | None = None  # numeric columns' rows, for medians
    sampled: list[str] = field(default_factory=list)  # the sample's columns, in order
    counts: dict[str, pd.Series] = field(default_factory=dict)

    @classmethod
    def of(
        cls, frame: pd.DataFrame, schema: Schema, median: bool = True, start: int = 0
    ) -> FeatureStats:
        """Summarise one partition of cleaned training rows.

        ``start``: the position of its first row among all training rows (it keys the
        median sample).
        """
        stats = cls(rows=len(frame))
        numbers = [
            pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=np.float64)
            for col in schema.numeric
        ]
        for col, values in zip(schema.numeric, numbers, strict=True):
            stats.moments[col] = _Moments.of(values[~np.isnan(values)])
        if median and numbers:
            stats.sample = RowSample(MEDIAN_SAMPLE_ROWS, seed=MEDIAN_SEED)
            stats.sample.add(start=start, values=np.column_stack(numbers))
            stats.sampled = list(schema.numeric)
        for col in schema.categorical:
            stats.counts[col] = frame[col].fillna(MISSING_CATEGORY).value_counts(sort=False)
        return stats

    def merge(self, other: FeatureStats) -> FeatureStats:
        """This partition's statistics followed by ``other``'s (``self`` is updated)."""
        self.rows += other.rows
        for col, m in other.moments.items():
            self.moments[col] = self.moments[col].merge(m) if col in self.moments else m
        if other.sample is not None:
            if self.sample is None:
                self.sample, self.sampled = other.sample, other.sampled
            else:
                self.sample.merge(other.sample)
        for col, c in other.counts.items():
            mine = self.counts.get(col)
            self.counts[col] = c if mine is None else mine.add(c, fill_value=0).astype("int64")
        return self

    def median(self, col: str) -> float:
        """The median of a numeric column's present values (0 when it has none)."""
        if self.sample is None or col not in self.sampled:
            raise ValueError(f"no median kept for {col}")
        values = self.sample.parts["values"][:, self.sampled.index(col)]
        present = values[~np.isnan(values)]
        return float(np.median(present)) if len(present) else 0.0

    def magnitudes(self) -> pd.Series:
        """Largest absolute value of each numeric column."""
        return pd.Series(
            {c: max(abs(m.low), abs(m.high)) if m.n else 0.0 for c, m in self.moments.items()},
            dtype="float64",
        )


def partition_stats(
    frame: pd.DataFrame, start: int, schema: Schema, median: bool = True
) -> FeatureStats:
    """:meth:`FeatureStats.of` one partition whose first row is the ``start``-th."""
    return FeatureStats.of(frame, schema, median, start=start)


def _nonzero(scale: np.ndarray) -> np.ndarray:
    """Scales of (near) constant columns as 1, as scikit-learn's scalers set them."""
    return np.where(scale < 10 * np.finfo(np.float64).eps, 1.0, scale)


def _stand_in(stats: FeatureStats, schema: Schema, cfg: FeatureConfig) -> pd.DataFrame:
    """A small frame on which fitting gives the categories and infrequent levels of the data.

    One-hot's ``max_categories`` keeps the most frequent levels (ties broken by the sorted
    level order, as scikit-learn's stable sort does): here each kept level appears twice and
    every other level once, which makes scikit-learn choose the same levels. Numeric columns
    are placeholders whose fitted statistics are replaced from the exact ones.
    """
    columns: dict[str, list[Any]] = {}
    fillers: dict[str, Any] = {}
    for col in schema.categorical:
        counts = stats.counts[col]
        levels = sorted(counts.index, key=str) if len(counts) else [MISSING_CATEGORY]
        counts = counts.reindex(levels).fillna(0).to_numpy()
        keep = len(levels)
        onehot = cfg.categorical_encoding == "onehot" and cfg.max_categories is not None
        if onehot and cfg.max_categories is not None and cfg.max_categories <= len(levels):
            keep = cfg.max_categories - 1
        order = np.argsort(counts, kind="mergesort")
        frequent = [levels[i] for i in order[len(levels) - keep :]] if keep else []
        column = [v for v in levels for _ in range(2 if v in frequent else 1)]
        # Padding repeats a kept level (more rows of it change nothing), else any level.
        fillers[col] = frequent[-1] if frequent else levels[0]
        columns[col] = column
    length = max([2, *(len(v) for v in columns.values())])
    for col, values in columns.items():
        values.extend([fillers[col]] * (length - len(values)))
        columns[col] = [np.nan if v == MISSING_CATEGORY else v for v in values]
    frame = pd.DataFrame(
        {c: [0.0, 1.0] * (length // 2) + [0.0] * (length % 2) for c in schema.numeric}
    )
    for col, values in columns.items():
        frame[col] = pd.Series(values, dtype="object")
    return frame[schema.features]


def preprocessor_from(stats: FeatureStats, schema: Schema, cfg: FeatureConfig) -> ColumnTransformer:
    """The fitted preprocessor of :func:`build_preprocessor`, from merged statistics.

    Equal to fitting it on the rows the statistics summarise: numeric imputation values
    (mean, or the median: exact up to :data:`MEDIAN_SAMPLE_ROWS` rows), the scalers'
    statistics of the imputed columns, and the categories (and infrequent levels) of each
    categorical column.

    Raises:
        DataError: A numeric feature holds values too large to learn from.
    """
    problem = magnitude_problem(stats.magnitudes())
    if problem is not None:
        raise DataError(problem)
    preprocessor = build_preprocessor(schema, cfg)
    preprocessor.fit(_stand_in(stats, schema, cfg))
    if not schema.numeric:
        return preprocessor
    steps = preprocessor.named_transformers_["num"].named_steps
    filled: list[_Moments] = []
    fills = []
    for col in schema.numeric:
        m = stats.moments[col]
        if not m.n:
            fill = 0.0  # keep_empty_features: an all-missing column becomes zeros
        elif cfg.numeric_impute == "mean":
            fill = m.mean
        else:
            fill = stats.median(col)
        fills.append(fill)
        filled.append(m.with_filled(stats.rows - m.n, fill))
    steps["impute"].statistics_ = np.array(fills, dtype=np.float64)
    scaler = steps.get("scale")
    rows = np.array([f.n for f in filled], dtype=np.int64)
    if isinstance(scaler, StandardScaler):
        var = np.array([f.m2 / f.n if f.n else 0.0 for f in filled])
        scaler.mean_ = np.array([f.mean for f in filled])
        scaler.var_ = var
        scaler.scale_ = _nonzero(np.sqrt(var))
        scaler.n_samples_seen_ = rows
    elif isinstance(scaler, MinMaxScaler):
        low = np.array([f.low if f.n else 0.0 for f in filled])
        high = np.array([f.high if f.n else 0.0 for f in filled])
        lo, hi = scaler.feature_range
        scaler.data_min_, scaler.data_max_ = low, high
        scaler.data_range_ = high - low
        scaler.scale_ = (hi - lo) / _nonzero(high - low)
        scaler.min_ = lo - low * scaler.scale_
        scaler.n_samples_seen_ = rows
    return preprocessor


def fit_features(
    train: pd.DataFrame, schema: Schema, cfg: FeatureConfig
) -> tuple[ColumnTransformer, np.ndarray]:
    """Fit the preprocessor on the training rows only; also return their float32 features.

    The whole-table case of :func:`preprocessor_from` (one partition's statistics).

    Args:
        train: Cleaned training rows.
        schema: Resolved column roles.
        cfg: Feature settings.

    Returns:
        ``(fitted preprocessor, training features as float32)``.

    Raises:
        DataError: A numeric feature holds values too large to learn from.
    """
    median = cfg.numeric_impute == "median"
    preprocessor = preprocessor_from(FeatureStats.of(train, schema, median), schema, cfg)
    # Plain arrays between steps: pandas output would build string columns for nothing and
    # refuses one-hot names that collide (column "a" value "b_c", column "a_b" value "c").
    out = preprocessor.transform(train[schema.features])
    return preprocessor, np.asarray(out, dtype=np.float32)


def transform_partition(frame: pd.DataFrame, preprocessor: ColumnTransformer) -> pd.DataFrame:
    """Transform one partition of cleaned rows into float32 features (frame in, frame out)."""
    columns = list(preprocessor.feature_names_in_)
    out = preprocessor.transform(frame[columns])
    names = [str(n) for n in preprocessor.get_feature_names_out()]
    return pd.DataFrame(np.asarray(out, dtype=np.float32), columns=names)
