"""Test data builders shared by several test modules."""

from __future__ import annotations

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
