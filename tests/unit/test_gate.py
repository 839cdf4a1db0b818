import numpy as np
import pandas as pd
import pytest

from tasks.core.fastcheck import evaluate
from tasks.core.report import render_html, render_markdown
from tasks.validate import REASONS_COLUMN, apply_gate, failure_message


def suite() -> dict:
    row = {"severity": "row"}
    return {
        "name": "demo",
        "expectations": [
            {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 5},
             "meta": {"severity": "critical"}},
            {"type": "expect_column_values_to_be_between",
             "kwargs": {"column": "x", "min_value": 0, "max_value": 10}, "meta": row},
            {"type": "expect_column_values_to_be_in_set",
             "kwargs": {"column": "c", "value_set": ["a", "b"]}, "meta": row},
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "x"}, "meta": row},
        ],
    }  # fmt: skip


def frame(n: int = 100) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"x": rng.uniform(0, 10, n), "c": rng.choice(["a", "b"], n)})


def test_row_failures_are_quarantined_with_reasons():
    data = frame()
    data.loc[[3, 40], "x"] = 99.0
    data.loc[40, "c"] = "zzz"
    data.loc[7, "x"] = np.nan
    passing, quarantined, outcome = apply_gate(data, evaluate(data, suite()), 0.05)
    assert outcome.passed and not outcome.critical
    assert (outcome.rows_in, outcome.rows_passed, outcome.rows_quarantined) == (100, 97, 3)
    assert quarantined["x"].tolist()[0] == 99.0 and len(passing) + len(quarantined) == len(data)
    reasons = dict(zip(quarantined.index, quarantined[REASONS_COLUMN], strict=True))
    assert sorted(reasons.values()) == sorted([
        "column_values_to_be_between:x",
        "column_values_to_not_be_null:x",
        "column_values_to_be_between:x; column_values_to_be_in_set:c",
    ])  # fmt: skip
    assert outcome.reasons == {
        "column_values_to_be_between:x": 2, "column_values_to_be_in_set:c": 1,
        "column_values_to_not_be_null:x": 1,
    }  # fmt: skip
    assert list(quarantined.columns) == ["x", "c", REASONS_COLUMN], "original columns + reasons"


def test_quarantine_rate_above_limit_fails_with_one_line():
    data = frame()
    data.loc[:9, "c"] = "bad"
    _, _, outcome = apply_gate(data, evaluate(data, suite()), 0.05)
    assert not outcome.passed and outcome.quarantine_rate == pytest.approx(0.10)
    message = failure_message(evaluate(data, suite()), outcome)
    assert "10 of 100 rows quarantined (10.0% > limit 5.0%)" in message and "\n" not in message


def test_critical_failure_and_row_level_error_stop_the_run():
    data = frame(3).astype({"x": object})
    data.loc[0, "x"] = "text"  # a string in a numeric column: the range check cannot run
    report = evaluate(data, suite())
    _, _, outcome = apply_gate(data, report, 0.05)
    kinds = {r.expectation for r in outcome.critical}
    assert "expect_table_row_count_to_be_between" in kinds, "too few rows is critical"
    assert "expect_column_values_to_be_between" in kinds, "an erroring row check escalates"
    assert not outcome.passed


def test_reports_are_self_contained():
    data = frame()
    data.loc[3, "x"] = 99.0
    report = evaluate(data, suite())
    _, _, outcome = apply_gate(data, report, 0.05)
    page = render_html(report, outcome)
    for forbidden in ("http://", "https://", "<script", "<link", "@import"):
        assert forbidden not in page, forbidden
    assert "<style>" in page and "quarantined" in page and "column_values_to_be_between:x" in page
    markdown = render_markdown(report, outcome)
    assert "| `column_values_to_be_between:x` | 1 |" in markdown
