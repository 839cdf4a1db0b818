import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlpipe.config import DatasetSpec
from mlpipe.data.datasets import load_source
from mlpipe.data.roles import resolve_schema
from mlpipe.errors import ConfigError
from mlpipe.quality.gate import apply_gate, failure_message
from mlpipe.quality.gx import run_suite
from mlpipe.quality.suites import (
    _outward,
    find_suite,
    load_suite,
    structural_suite,
    suite_from_frame,
    suite_path,
)
from mlpipe.reports.validation import render_markdown
from tests.helpers import make_mixed_frame


def test_failing_rows_examples_and_message():
    frame = pd.DataFrame({"a": [1, 2, 99, 3, 100], "b": ["x", "y", "x", "z", "x"]})
    suite = {
        "name": "demo",
        "expectations": [
            {"type": "expect_column_values_to_be_between",
             "kwargs": {"column": "a", "min_value": 0, "max_value": 10}},
            {"type": "expect_column_values_to_be_in_set",
             "kwargs": {"column": "b", "value_set": ["x", "y", "z"]}},
        ],
    }  # fmt: skip
    report = run_suite(frame, suite)
    assert not report.success and len(report.failures) == 1
    failure = report.failures[0]
    assert (failure.column, failure.unexpected_count) == ("a", 2)
    assert failure.unexpected_index == [2, 4] and failure.examples == [99, 100]
    _, _, outcome = apply_gate(frame, report, max_quarantine_rate=0.05)
    message = failure_message(report, outcome)
    assert "expect_column_values_to_be_between" in message and "'a'" in message
    assert "2 failing rows" in message and "99" in message
    summary = render_markdown(report, outcome)
    assert "Validation FAILED" in summary and "| a | critical | **FAIL** | 2 |" in summary


def test_missing_column_is_named():
    report = run_suite(pd.DataFrame({"a": [1]}), structural_suite_for(["a", "gone"]))
    assert [f.column for f in report.failures] == ["gone"]


def structural_suite_for(columns: list[str]) -> dict:
    return {
        "name": "s",
        "expectations": [
            {"type": "expect_column_to_exist", "kwargs": {"column": c}} for c in columns
        ],
    }


@pytest.mark.parametrize("name", ["digits", "penguins", "breast_cancer", "diabetes"])
def test_shipped_suites_pass_on_their_data(name: str):
    spec = DatasetSpec(source=name)
    frame = load_source(spec)
    schema = resolve_schema(frame, spec)
    path = find_suite(schema.name, None)
    assert path is not None and path.name == f"{name}.json"
    assert run_suite(frame, load_suite(path)).success


def test_generated_suite_passes_on_reference_and_catches_outliers():
    frame = make_mixed_frame()
    schema = resolve_schema(frame, DatasetSpec(source="m.csv", target="label"))
    suite = suite_from_frame(frame, schema)
    assert run_suite(frame, suite).success, "a suite must pass on the data it was built from"
    assert all(e["meta"]["severity"] in {"critical", "row"} for e in suite["expectations"])
    bad = frame.copy()
    bad.loc[0, "size"] = 10_000.0
    bad.loc[1, "colour"] = "purple"
    failed = {f.column for f in run_suite(bad, suite).failures}
    assert failed == {"size", "colour"}
    assert json.loads(json.dumps(suite)) == suite, "JSON round trip for expectations/*.json"


def test_suite_bounds_round_outward():
    frame = pd.DataFrame({"x": [0.0008948, 0.5, 0.9], "y": [0, 1, 0]})
    schema = resolve_schema(
        pd.concat([frame] * 8, ignore_index=True), DatasetSpec(source="t.csv", target="y")
    )
    suite = suite_from_frame(frame, schema)
    between = next(
        e for e in suite["expectations"]
        if e["type"] == "expect_column_values_to_be_between" and e["kwargs"]["column"] == "x"
    )  # fmt: skip
    assert between["kwargs"]["min_value"] <= 0.0008948
    assert run_suite(frame, suite).success
    assert _outward(0.0008948, up=False, integral=False) <= 0.0008948
    assert _outward(0.0008948, up=True, integral=False) >= 0.0008948
    assert _outward(-2.5, up=False, integral=True) == -3


def test_structural_suite_checks_target_and_features():
    schema = resolve_schema(make_mixed_frame(), DatasetSpec(source="m.csv", target="label"))
    suite = structural_suite(schema)
    columns = {e["kwargs"].get("column") for e in suite["expectations"]}
    assert {"label", "size", "colour"} <= columns


def test_load_suite_errors(tmp_path: Path):
    with pytest.raises(ConfigError, match="not found"):
        load_suite(tmp_path / "x.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_suite(tmp_path / "bad.json")


def test_unknown_expectation_type_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown expectation type 'expect_the_moon'"):
        run_suite(pd.DataFrame({"a": [np.nan]}), {"name": "x", "expectations": [
            {"type": "expect_the_moon", "kwargs": {}}]})  # fmt: skip


@pytest.mark.parametrize("name", ["../../etc/passwd", "a/b", "..", "x/../../y", ""])
def test_a_dataset_name_cannot_leave_the_expectations_folder(tmp_path: Path, name: str):
    with pytest.raises(ConfigError, match="dataset name"):
        suite_path(name, tmp_path)


def test_malformed_suite_entries_are_named(tmp_path: Path):
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"expectations": [{"kwargs": {}}]}))
    with pytest.raises(ConfigError, match="expectation 1 has no 'type'"):
        load_suite(path)
    path.write_text(json.dumps({"expectations": [{"type": "expect_column_to_exist", "kwargs": 3}]}))
    with pytest.raises(ConfigError, match="'kwargs' must be an object"):
        load_suite(path)
