"""Behavioural tests: invariance, directional expectations, minimum functionality."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlpipe.config import DatasetSpec
from mlpipe.data.datasets import load_source
from tests.helpers import make_mixed_frame

pytestmark = pytest.mark.slow


def penguins_rows() -> pd.DataFrame:
    return load_source(DatasetSpec(source="penguins")).drop(columns=["species"])


# Invariance -----------------------------------------------------------------------------------


def test_ignored_column_does_not_change_predictions(penguins_model):
    rows = penguins_rows()
    before = penguins_model.predict(rows)
    after = penguins_model.predict(rows.assign(year=1999))
    pd.testing.assert_frame_equal(before, after)


def test_extra_columns_and_column_order_do_not_change_predictions(penguins_model):
    rows = penguins_rows()
    before = penguins_model.predict(rows)
    shuffled = rows[list(reversed(rows.columns))].assign(comment="seen on a Tuesday")
    pd.testing.assert_frame_equal(before, penguins_model.predict(shuffled))


def test_a_row_gets_the_same_label_alone_or_in_a_batch(penguins_model):
    rows = penguins_rows().head(40)
    batch = penguins_model.predict(rows)["prediction"].tolist()
    alone = [penguins_model.predict(rows.iloc[[i]])["prediction"].iloc[0] for i in range(40)]
    assert alone == batch


# Directional expectations -----------------------------------------------------------------------


def test_larger_size_means_higher_price(price_model):
    # In this data price = 0.8 * size + 15 (red) + noise: more size, more price.
    rows = make_mixed_frame(n=300, seed=5, regression=True).drop(columns=["price"])
    base = price_model.predict(rows)["prediction"].to_numpy()
    bigger = price_model.predict(rows.assign(size=rows["size"] + 10))["prediction"].to_numpy()
    assert np.mean(bigger > base) >= 0.95
    assert np.mean(bigger - base) == pytest.approx(8.0, rel=0.35)


def test_red_items_cost_more(price_model):
    rows = make_mixed_frame(n=300, seed=6, regression=True).drop(columns=["price"])
    red = price_model.predict(rows.assign(colour="red"))["prediction"].to_numpy()
    blue = price_model.predict(rows.assign(colour="blue"))["prediction"].to_numpy()
    assert np.mean(red > blue) >= 0.95


def test_heavier_penguins_are_more_likely_gentoo(penguins_model):
    rows = penguins_rows().dropna()
    light = penguins_model.predict(rows.assign(body_mass_g=3000.0, flipper_length_mm=185.0))
    heavy = penguins_model.predict(rows.assign(body_mass_g=5800.0, flipper_length_mm=225.0))
    assert heavy["proba_Gentoo"].mean() > light["proba_Gentoo"].mean() + 0.3


# Minimum functionality --------------------------------------------------------------------------


def test_every_digit_prototype_is_recognised(digits_model):
    frame = load_source(DatasetSpec(source="digits"))
    prototypes = frame.groupby("digit").mean()  # the average image of each digit
    predicted = digits_model.predict(prototypes.reset_index(drop=True))["prediction"].tolist()
    assert predicted == list(range(10))


def test_textbook_penguins(penguins_model):
    rows = pd.DataFrame(
        {
            "island": ["Biscoe", "Torgersen", "Dream"],
            "bill_length_mm": [47.5, 38.8, 48.8],
            "bill_depth_mm": [15.0, 18.3, 18.4],
            "flipper_length_mm": [217.0, 190.0, 196.0],
            "body_mass_g": [5076.0, 3700.0, 3733.0],
            "sex": ["male", "female", "female"],
            "year": [2008, 2008, 2008],
        }
    )  # species means from the data: Gentoo, Adelie, Chinstrap
    assert penguins_model.predict(rows)["prediction"].tolist() == ["Gentoo", "Adelie", "Chinstrap"]
