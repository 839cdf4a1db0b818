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


def _streaming_suite() -> dict:
    def exp(kind: str, severity: str = "critical", **kwargs) -> dict:
        return {"type": kind, "kwargs": kwargs, "meta": {"severity": severity}}

    return {
        "name": "t",
        "expectations": [
            exp("expect_table_row_count_to_be_between", min_value=20, max_value=1000),
            exp("expect_table_columns_to_match_set", column_set=["id", "x", "c", "y"]),
            exp("expect_column_values_to_be_of_type", column="x", type_="float64"),
            exp("expect_column_values_to_not_be_null", column="x", mostly=0.9),
            exp("expect_column_values_to_be_between", "row", column="x", min_value=-2.5),
            exp("expect_column_values_to_be_in_set", "row", column="c", value_set=["u", "v"]),
            exp("expect_column_values_to_be_unique", "row", column="id"),
            exp("expect_column_values_to_not_be_null", column="y"),
        ],
    }


@pytest.mark.parametrize("parts", [1, 2, 5])
@pytest.mark.parametrize("missing", [10, 40])
def test_a_gate_over_partitions_decides_as_over_the_whole_table(parts, missing):
    from mlpipe.quality.fastcheck import repeated_values
    from mlpipe.quality.gate import PartitionGate

    rng = np.random.default_rng(parts + missing)
    n = 300
    data = pd.DataFrame(
        {
            "id": rng.choice(np.arange(100, 2100), n, replace=False),
            "x": rng.normal(size=n),
            "c": rng.choice(["u", "v"], n),
            "y": rng.choice(["a", "b"], n),
        }
    )
    data.loc[rng.choice(n, missing, replace=False), "x"] = np.nan  # 10 fine; 40 > 10% fails
    data.loc[[5, 250], "id"] = 77  # a repeat across partitions
    data.loc[[17, 200], "c"] = "w"
    suite = _streaming_suite()
    whole_report = evaluate(data, suite)
    passing, quarantined, whole = apply_gate(data, whole_report, 0.5)

    chunks = [data.iloc[rows] for rows in np.array_split(np.arange(n), parts)]
    repeated = repeated_values(chunks, ["id"]) if parts > 1 else None
    gate = PartitionGate(suite, "fast", 0.5, repeated)
    kept, flagged = zip(*(gate.add(chunk) for chunk in chunks), strict=True)
    report = gate.report()
    outcome = gate.outcome(report)

    def verdicts(r):
        return sorted((x.expectation, x.column, x.success, x.unexpected_count) for x in r.results)

    assert verdicts(report) == verdicts(whole_report)
    assert report.rows == n
    assert outcome.passed == whole.passed == (missing == 10)
    assert (outcome.rows_quarantined, outcome.reasons) == (whole.rows_quarantined, whole.reasons)
    assert [c.expectation for c in outcome.critical] == [c.expectation for c in whole.critical]
    pd.testing.assert_frame_equal(pd.concat(kept, ignore_index=True), passing)
    some = [f for f in flagged if len(f)]  # empty ones are not written
    pd.testing.assert_frame_equal(pd.concat(some, ignore_index=True), quarantined)
    assert whole.reasons["column_values_to_be_unique:id"] == 2


def test_whole_table_expectations_are_named():
    from mlpipe.quality.gate import whole_table_only

    suite = _streaming_suite()
    suite["expectations"].append(
        {"type": "expect_column_mean_to_be_between", "kwargs": {"column": "x", "min_value": 0}}
    )
    assert whole_table_only(suite) == ["expect_column_mean_to_be_between"]
    assert whole_table_only(_streaming_suite()) == []


@pytest.mark.parametrize("parts", [1, 4])
def test_strict_row_count_bounds_hold_over_partitions(parts):
    from mlpipe.quality.gate import PartitionGate

    suite = {
        "name": "t",
        "expectations": [
            {
                "type": "expect_table_row_count_to_be_between",
                "kwargs": {"min_value": 10, "max_value": 100, "strict_max": True},
            }
        ],
    }
    data = pd.DataFrame({"x": np.arange(100.0)})
    gate = PartitionGate(suite, "fast", 0.0)
    for rows in np.array_split(np.arange(100), parts):
        gate.add(data.iloc[rows])
    report = gate.report()
    assert not report.success and report.results[0].observed == 100
    assert not evaluate(data, suite).success, "the whole table: 100 is not < 100 either"
