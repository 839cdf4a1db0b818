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
