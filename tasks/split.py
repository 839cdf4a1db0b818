"""Stage: seeded train/validation/test split, stratified for classification."""

from __future__ import annotations

import pandas as pd
from prefect import task
from pydantic import BaseModel, ConfigDict
from sklearn.model_selection import train_test_split

from tasks.clean import CleanedData
from tasks.core import tracking
from tasks.core.config import SplitConfig
from tasks.core.errors import DataError
from tasks.core.run import RunContext, logger, read_parquet, write_parquet
from tasks.core.schema import Schema, to_jsonable

# A stratified three-way split needs every class in every part.
MIN_ROWS_PER_CLASS = 3


class Splits(BaseModel):
    """Paths of the three splits plus the class labels (classification only)."""

    model_config = ConfigDict(frozen=True)

    train: str
    val: str
    test: str
    dataset: Schema
    classes: list[int | float | str] | None = None


def split_frame(
    frame: pd.DataFrame, target: str, classify: bool, cfg: SplitConfig, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Split rows into train/validation/test.

    Args:
        frame: Cleaned rows.
        target: Target column (used for stratification).
        classify: Whether the task is classification (stratify if configured and possible).
        cfg: Split fractions.
        seed: Random seed.

    Returns:
        ``(train, val, test)`` frames with fresh indexes.

    Raises:
        DataError: Too few rows for the requested fractions.
    """
    n_test = round(len(frame) * cfg.test_size)
    n_val = round(len(frame) * cfg.val_size)
    if n_test < 1 or n_val < 1 or len(frame) - n_test - n_val < 2:
        raise DataError(
            f"{len(frame)} rows are too few for a train/validation/test split "
            f"with test_size={cfg.test_size} and val_size={cfg.val_size}"
        )
    stratify = classify and cfg.stratify
    if stratify and frame[target].value_counts().min() < MIN_ROWS_PER_CLASS:
        logger("split").warning(
            "a class has fewer than %d rows: splitting without stratification",
            MIN_ROWS_PER_CLASS,
        )
        stratify = False
    rest, test = train_test_split(
        frame,
        test_size=n_test,
        random_state=seed,
        stratify=frame[target] if stratify else None,
    )
    train, val = train_test_split(
        rest,
        test_size=n_val,
        random_state=seed,
        stratify=rest[target] if stratify else None,
    )
    return train.reset_index(drop=True), val.reset_index(drop=True), test.reset_index(drop=True)


def class_labels(target: pd.Series) -> list[int | float | str]:
    """Sorted distinct labels as plain Python values (ints/strings sort separately)."""
    values = [to_jsonable(v) for v in target.dropna().unique()]
    return sorted(values, key=lambda v: (isinstance(v, str), v))


@task(name="split")
def split_data(data: CleanedData, cfg: SplitConfig, seed: int, run: RunContext) -> Splits:
    """Split ``clean.parquet`` into ``train``/``val``/``test`` Parquet files."""
    frame = read_parquet(data.path)
    schema = data.dataset
    classify = schema.task != "regression"
    train, val, test = split_frame(frame, schema.target, classify, cfg, seed)
    tracking.log_metrics(
        run.run_id, {"rows_train": len(train), "rows_val": len(val), "rows_test": len(test)}
    )
    logger("split").info("split: %d train, %d validation, %d test", len(train), len(val), len(test))
    return Splits(
        train=write_parquet(train, run.path("train.parquet")),
        val=write_parquet(val, run.path("val.parquet")),
        test=write_parquet(test, run.path("test.parquet")),
        dataset=schema,
        classes=class_labels(frame[schema.target]) if classify else None,
    )
