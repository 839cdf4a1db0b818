import numpy as np
import pandas as pd
import pytest

from mlpipe.quality.fastcheck import evaluate
from mlpipe.quality.gate import REASONS_COLUMN, apply_gate, failure_message
from mlpipe.reports.validation import render_html, render_markdown


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


def mostly_suite(mostly: float) -> dict:
    return {"name": "batch", "expectations": [
        {"type": "expect_column_values_to_not_be_null",
         "kwargs": {"column": "x", "mostly": mostly}, "meta": {"severity": "critical"}},
    ]}  # fmt: skip


def batch(n: int, missing: int) -> pd.DataFrame:
    data = frame(n)
    data.loc[: missing - 1, "x"] = np.nan
    return data


def test_one_missing_value_in_a_small_batch_does_not_stop_it():
    from mlpipe.quality.gate import MostlyTally, with_mostly

    data = batch(20, 1)  # 5% missing where mostly=0.98 allows 2%: exact rule fails...
    report = evaluate(data, mostly_suite(0.98))
    _, _, exact = apply_gate(data, report, 0.05)
    assert not exact.passed, "...training data is judged exactly"
    tally = MostlyTally(alpha=0.01)
    _, _, outcome = apply_gate(data, report, 0.05, tally)
    assert with_mostly(outcome, tally).passed, "one in 20 is no evidence of a rise above 2%"


def test_a_real_rise_in_missing_values_stops_a_batch_even_split_in_chunks():
    from mlpipe.quality.gate import MostlyTally, with_mostly

    tally = MostlyTally(alpha=0.01)
    for _ in range(5):  # 5 chunks of 200 rows, 10% missing each: far above 2%
        chunk = batch(200, 20)
        _, _, outcome = apply_gate(chunk, evaluate(chunk, mostly_suite(0.98)), 1.0, tally)
        assert outcome.passed, "chunks are not judged one by one"
    judged = with_mostly(outcome, tally)
    assert not judged.passed and "100 of 1000 rows fail" in judged.mostly_failures[0]
    assert "binomial" in failure_message(evaluate(chunk, mostly_suite(0.98)), judged)
