"""Feature engineering: a scikit-learn ColumnTransformer fitted on the training split only.

Transformation is partition-wise (:func:`transform_partition`: a frame in, a frame out), so the
same fitted object can be mapped over partitions.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler, OneHotEncoder, OrdinalEncoder, StandardScaler

from mlpipe.config import FeatureConfig
from mlpipe.errors import DataError
from mlpipe.serving.schema import Schema

# float32 (the network's input type) holds about +/-3.4e38; larger values are a units or
# parsing bug, and near that limit a scaler's sum of squares overflows already.
MAX_MAGNITUDE = 1e38


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
            ("impute", SimpleImputer(strategy="constant", fill_value="__missing__")),
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


def fit_features(
    train: pd.DataFrame, schema: Schema, cfg: FeatureConfig
) -> tuple[ColumnTransformer, np.ndarray]:
    """Fit the preprocessor on the training rows only; also return their float32 features.

    Fitting computes the transformed rows anyway (scikit-learn's ``fit`` is a
    ``fit_transform``), so returning them saves transforming the training rows again.

    Args:
        train: Cleaned training rows.
        schema: Resolved column roles.
        cfg: Feature settings.

    Returns:
        ``(fitted preprocessor, training features as float32)``.

    Raises:
        DataError: A numeric feature holds values too large to learn from.
    """
    check_magnitudes(train, schema)
    preprocessor = build_preprocessor(schema, cfg)
    # Plain arrays between steps: pandas output would build string columns for nothing and
    # refuses one-hot names that collide (column "a" value "b_c", column "a_b" value "c").
    out = preprocessor.fit_transform(train[schema.features])
    return preprocessor, np.asarray(out, dtype=np.float32)


def transform_partition(frame: pd.DataFrame, preprocessor: ColumnTransformer) -> pd.DataFrame:
    """Transform one partition of cleaned rows into float32 features (frame in, frame out)."""
    columns = list(preprocessor.feature_names_in_)
    out = preprocessor.transform(frame[columns])
    names = [str(n) for n in preprocessor.get_feature_names_out()]
    return pd.DataFrame(np.asarray(out, dtype=np.float32), columns=names)
