"""The vectorised engine and Great Expectations agree on random, messy frames."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlpipe.quality import fastcheck, gx

FLOATS = st.one_of(
    st.integers(-10, 10).map(float),  # exact bounds, where strict/non-strict differ
    st.floats(-1e6, 1e6, allow_nan=False, width=32),
    st.sampled_from([np.nan, np.inf, -np.inf, 0.0, 1e12]),
)
MIXED = st.one_of(
    st.none(),
    st.integers(-5, 5),
    st.floats(-5, 5, allow_nan=False, width=16),
    st.sampled_from(["a", "b", "ab", "1", "x y", "Zz", ""]),
)
TEXT = st.one_of(st.none(), st.sampled_from(["a", "b", "ab", "abc", "1", "a1", "B"]))


@st.composite
def frames(draw: st.DrawFn) -> pd.DataFrame:
    n = draw(st.integers(0, 25))
    return pd.DataFrame(
        {
            "f": pd.Series(draw(st.lists(FLOATS, min_size=n, max_size=n)), dtype="float64"),
            "i": pd.Series(
                draw(st.lists(st.integers(-10, 10), min_size=n, max_size=n)), dtype="int64"
            ),
            "o": pd.Series(draw(st.lists(MIXED, min_size=n, max_size=n)), dtype=object),
            "s": pd.Series(draw(st.lists(TEXT, min_size=n, max_size=n)), dtype="str"),
            "b": pd.Series(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool),
        }
    )


COLUMNS = ["f", "i", "o", "s", "b", "ghost"]
MOSTLY = st.one_of(st.just(None), st.sampled_from([0.5, 0.8, 0.95, 1.0]))


def _exp(kind: str, **kwargs: Any) -> dict[str, Any]:
    return {"type": f"expect_{kind}", "kwargs": {k: v for k, v in kwargs.items() if v is not None}}


@st.composite
def suites(draw: st.DrawFn) -> dict[str, Any]:
    col = lambda: draw(st.sampled_from(COLUMNS))  # noqa: E731
    numeric_col = lambda: draw(st.sampled_from(["f", "i", "b"]))  # noqa: E731
    lo = draw(st.one_of(st.none(), st.integers(-10, 5)))
    hi = (
        draw(st.one_of(st.none(), st.integers(0, 10)))
        if lo is not None
        else draw(st.integers(0, 10))
    )
    members = st.one_of(st.integers(-3, 3), st.sampled_from(["a", "b", "1"]))
    value_set = draw(st.lists(members, min_size=1, max_size=5, unique_by=lambda v: (type(v), v)))
    exps = [
        _exp("column_values_to_not_be_null", column=col(), mostly=draw(MOSTLY)),
        _exp("column_values_to_be_between", column=numeric_col(), min_value=lo, max_value=hi,
             strict_min=draw(st.one_of(st.none(), st.booleans())),
             strict_max=draw(st.one_of(st.none(), st.booleans())), mostly=draw(MOSTLY)),
        _exp("column_values_to_be_in_set", column=col(), value_set=value_set, mostly=draw(MOSTLY)),
        _exp("column_values_to_be_unique", column=col(), mostly=draw(MOSTLY)),
        _exp("column_values_to_match_regex", column=col(),
             regex=draw(st.sampled_from(["^a", "b$", "^[0-9]+$", "[A-Z]", "a.?1"])),
             mostly=draw(MOSTLY)),
        _exp("column_values_to_be_of_type", column=numeric_col(),
             type_=draw(st.sampled_from(["float64", "int64", "bool"]))),
        _exp("column_values_to_be_in_type_list", column=numeric_col(),
             type_list=draw(st.lists(st.sampled_from(["float64", "int64", "bool"]), min_size=1,
                                     max_size=2, unique=True))),
        _exp("column_to_exist", column=col()),
        _exp("table_columns_to_match_set",
             column_set=draw(st.lists(st.sampled_from(COLUMNS), min_size=1, max_size=5,
                                      unique=True)),
             exact_match=draw(st.booleans())),
        _exp("table_columns_to_match_ordered_list",
             column_list=draw(st.sampled_from([["f", "i", "o", "s", "b"], ["i", "f"]]))),
        _exp("table_row_count_to_be_between", min_value=draw(st.integers(0, 10)),
             max_value=draw(st.integers(10, 30))),
    ]  # fmt: skip
    return {"name": "differential", "expectations": exps}


def _key(result: gx.ExpectationResult) -> tuple[Any, ...]:
    return (result.expectation, result.column, result.success, result.unexpected_count,
            tuple(result.unexpected_index))  # fmt: skip


@pytest.mark.slow
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frame=frames(), suite=suites())
def test_fast_engine_matches_great_expectations(frame: pd.DataFrame, suite: dict[str, Any]):
    ours = fastcheck.evaluate(frame, suite)
    theirs = gx.run_suite(frame, suite)
    assert ours.success == theirs.success
    assert sorted(map(_key, ours.results), key=str) == sorted(map(_key, theirs.results), key=str)


@given(suite=suites())
@settings(max_examples=1)
def test_every_supported_type_is_exercised_by_the_differential_test(suite: dict[str, Any]):
    assert {e["type"] for e in suite["expectations"]} == set(fastcheck.HANDLERS)


def test_unsupported_types_fall_back_to_great_expectations():
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0]})
    suite = {"name": "s", "expectations": [
        _exp("column_mean_to_be_between", column="x", min_value=10, max_value=20),
        _exp("column_values_to_be_between", column="x", min_value=0, max_value=2),
    ]}  # fmt: skip
    report = fastcheck.evaluate(frame, suite)
    mean = next(r for r in report.results if r.expectation == "expect_column_mean_to_be_between")
    assert not mean.success and mean.observed == 2.0
    between = next(r for r in report.results if r.expectation.endswith("values_to_be_between"))
    assert between.unexpected_index == [2]
