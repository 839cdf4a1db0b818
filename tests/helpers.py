"""Test data builders shared by several test modules."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def make_mixed_frame(n: int = 300, seed: int = 0, regression: bool = False) -> pd.DataFrame:
    """A realistic small table: numeric and text-categorical columns, missing values, an id."""
    rng = np.random.default_rng(seed)
    size = rng.normal(50, 10, n)
    colour = rng.choice(["red", "green", "blue"], n)
    region = rng.choice(["north", "south"], n)
    noise = rng.normal(0, 1, n)
    score = size * 0.8 + np.where(colour == "red", 15, 0) + noise * 3
    frame = pd.DataFrame(
        {
            "id": [f"row-{i:05d}" for i in range(n)],
            "size": size.round(2),
            "weight": (size * 2 + rng.normal(0, 5, n)).round(1),
            "colour": colour,
            "region": region,
        }
    )
    if regression:
        frame["price"] = score.round(2)
    else:
        frame["label"] = np.where(score > np.median(score), "high", "low")
    # Missing values in a numeric and a categorical feature.
    frame.loc[frame.sample(frac=0.05, random_state=seed).index, "weight"] = np.nan
    frame.loc[frame.sample(frac=0.05, random_state=seed + 1).index, "colour"] = None
    return frame


def make_shop_year(
    n: int, seed: int, shift_price: float = 0.0, web_share: float = 0.3
) -> pd.DataFrame:
    """One year of a time-stamped shop table from a fixed process; optional shifts."""
    rng = np.random.default_rng(seed)
    price = rng.normal(100 + shift_price, 15, n)
    visits = rng.poisson(20, n).astype(float)
    channel = rng.choice(["web", "store"], n, p=[web_share, 1 - web_share])
    region = rng.choice(["north", "south", "east"], n, p=[0.5, 0.3, 0.2])
    spend = 0.5 * price + 2 * visits + np.where(channel == "web", 10, 0) + rng.normal(0, 5, n)
    return pd.DataFrame(
        {
            "year": 2023 + seed % 10,
            "price": price.round(2),
            "visits": visits,
            "region": region,
            "channel": channel,
            "spend": spend.round(2),
        }
    )


def train_into(folder: Path, configs: list[dict[str, Any]]) -> None:
    """Run the training flow once per config with MLflow pointed at ``folder`` (a store to copy).

    Needs a Prefect API (the session's harness). The store's artifact folder stays in ``folder``,
    so copies of ``mlflow.db`` keep reading the trained models from there.
    """
    from flows.training import training
    from mlpipe.config import build_config

    old_cwd, old_uri = os.getcwd(), os.environ.get("MLFLOW_TRACKING_URI")
    os.chdir(folder)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{folder / 'mlflow.db'}"
    try:
        for config in configs:
            training(build_config(config))
    finally:
        os.chdir(old_cwd)
        if old_uri is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = old_uri


def use_store(store: Path, workdir: Path) -> None:
    """Copy a trained store's database into a test's working directory."""
    shutil.copy(store / "mlflow.db", workdir / "mlflow.db")
