"""The one place that builds a Great Expectations context and runs suites.

Suites live as JSON in ``expectations/`` (in git). They run in an ephemeral context, so nothing is
written to disk, and the result is turned into a :class:`ValidationReport` that the rest of mlpipe
uses. Great Expectations is imported only when a suite needs it.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import pandas as pd

from mlpipe.errors import ConfigError
from mlpipe.quality.results import (
    MAX_EXAMPLES,
    ExpectationResult,
    ValidationReport,
    jsonable,
    mostly,
    severity,
)


def _context() -> Any:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    # GX pins this logger to INFO at import and announces a temporary docs folder on every
    # ephemeral context; only warnings are worth showing.
    logging.getLogger("great_expectations.data_context.types.base").setLevel(logging.WARNING)
    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    return ctx


def run_suite(frame: pd.DataFrame, suite: dict[str, Any]) -> ValidationReport:
    """Run a whole suite with Great Expectations (COMPLETE results, failing rows included).

    Args:
        frame: The table to validate; its index is reset so failing rows are positions.
        suite: Suite mapping as stored in ``expectations/*.json``.

    Returns:
        The report; ``unexpected_index`` holds the positions of failing rows.

    Raises:
        ConfigError: The suite names an unknown expectation type or bad arguments.
    """
    data = frame.reset_index(drop=True)
    check_suite(suite)
    return build_report(data, suite, run_suite_raw(data, suite))


def run_suite_raw(frame: pd.DataFrame, suite: dict[str, Any]) -> list[ExpectationResult]:
    """Results of every expectation of ``suite`` on ``frame`` (index reset), in suite order."""
    import great_expectations as gx

    ctx = _context()
    spec = {k: v for k, v in suite.items() if k in {"name", "expectations", "meta"}}
    spec["name"] = str(spec.get("name") or "suite")
    try:
        gx_suite = ctx.suites.add(gx.ExpectationSuite(**spec))
    except Exception as err:  # GX raises many types for a malformed suite
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(f"invalid expectation suite '{suite.get('name')}': {first}") from None
    if len(gx_suite.expectations) != len(suite["expectations"]):
        # GX logs and drops an expectation it cannot build; a dropped check must not pass.
        raise ConfigError(
            f"invalid expectation suite '{suite.get('name')}': "
            "Great Expectations rejected some expectations (check their kwargs)"
        )
    batch = (
        ctx.data_sources.add_pandas("mlpipe")
        .add_dataframe_asset("table")
        .add_batch_definition_whole_dataframe("whole")
    )
    definition = ctx.validation_definitions.add(
        gx.ValidationDefinition(name="mlpipe", data=batch, suite=gx_suite)
    )
    outcome = definition.run(
        batch_parameters={"dataframe": frame.reset_index(drop=True)},
        result_format={"result_format": "COMPLETE"},
    ).to_json_dict()
    by_id = {str(r["expectation_config"].get("id")): r for r in outcome["results"]}
    # GX keeps suite order, but match on ids to be sure results line up with expectations.
    ordered = [by_id.get(str(e.id)) for e in gx_suite.expectations]
    raw = ordered if all(ordered) else outcome["results"]
    return [_reduce(r) for r in raw if r is not None]


def build_report(
    frame: pd.DataFrame,
    suite: dict[str, Any],
    results: list[ExpectationResult],
    rows: int | None = None,
) -> ValidationReport:
    """Assemble a report from per-expectation results (in suite order), naming missing columns.

    Table-level failures (missing columns, row counts) explain the column-level ones, so they
    come first. ``rows``: the table's rows when ``frame`` is only one partition of it.
    """
    columns = {str(c) for c in frame.columns}
    explained = [
        _explain(r, exp, columns) for r, exp in zip(results, suite["expectations"], strict=True)
    ]
    explained.sort(key=lambda r: (r.success, r.column is not None))
    return ValidationReport(
        suite=str(suite.get("name")),
        success=all(r.success for r in explained),
        rows=len(frame) if rows is None else rows,
        results=explained,
    )


def check_suite(suite: dict[str, Any]) -> None:
    """Refuse unknown expectation types by name, before GX silently drops them.

    Raises:
        ConfigError: An expectation type is unknown.
    """
    from great_expectations.expectations.registry import get_expectation_impl

    for exp in suite["expectations"]:
        kind = exp.get("type") if isinstance(exp, dict) else None
        try:
            get_expectation_impl(str(kind))
        except Exception:  # ExpectationNotFoundError and friends
            raise ConfigError(
                f"invalid expectation suite '{suite.get('name')}': "
                f"unknown expectation type '{kind}'"
            ) from None


def _explain(
    result: ExpectationResult, exp: dict[str, Any], columns: set[str]
) -> ExpectationResult:
    """Name missing or unexpected columns instead of a bare observed list."""
    if result.success:
        return result
    if result.column is not None and result.column not in columns:
        return result.model_copy(update={"error": f"column '{result.column}' is missing"})
    if result.expectation in {
        "expect_table_columns_to_match_set",
        "expect_table_columns_to_match_ordered_list",
    }:
        kwargs = exp.get("kwargs", {})
        wanted = [str(c) for c in kwargs.get("column_set") or kwargs.get("column_list") or []]
        missing = [c for c in wanted if c not in columns]
        extra = sorted(columns - set(wanted))
        parts = []
        if missing:
            parts.append("missing columns: " + ", ".join(missing))
        if extra and (kwargs.get("exact_match", True) or not missing):
            parts.append("unexpected columns: " + ", ".join(extra))
        if not parts:
            parts.append("column order differs")
        return result.model_copy(update={"error": "; ".join(parts)})
    return result


def _reduce(raw: dict[str, Any]) -> ExpectationResult:
    config = raw["expectation_config"]
    result = raw.get("result") or {}
    exc = raw.get("exception_info") or {}
    error = exc.get("exception_message") if exc.get("raised_exception") else None
    examples = [jsonable(v) for v in (result.get("partial_unexpected_list") or [])]
    elements = int(result.get("element_count") or 0)
    missing = int(result.get("missing_count") or 0)
    counts_nulls = config["type"] == "expect_column_values_to_not_be_null"
    return ExpectationResult(
        expectation=config["type"],
        column=config["kwargs"].get("column"),
        success=bool(raw["success"]),
        severity=severity(config),
        observed=jsonable(result.get("observed_value")),
        unexpected_count=int(result.get("unexpected_count") or 0),
        unexpected_percent=float(result.get("unexpected_percent") or 0.0),
        total=elements if counts_nulls else max(elements - missing, 0),
        mostly=mostly(config),
        examples=examples[:MAX_EXAMPLES],
        unexpected_index=[int(i) for i in (result.get("unexpected_index_list") or [])],
        error=error,
    )
