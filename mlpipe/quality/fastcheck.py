"""Vectorised evaluation of the common expectation types, with Great Expectations as fallback.

Great Expectations' pandas engine costs 4-20x the time of the same checks written as vectorised
pandas (see ``docs/benchmarks.md``). This engine evaluates the common types directly and hands
every other expectation (and the cases below it cannot decide the same way) to GX, returning
results of the same shape. ``tests/unit/test_fastcheck_differential.py`` checks, on random
frames, that verdicts and failing rows equal Great Expectations' for every supported type.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import pandas as pd

from mlpipe.quality import gx
from mlpipe.quality.results import (
    MAX_EXAMPLES,
    ExpectationResult,
    ValidationReport,
    jsonable,
    severity,
)
from mlpipe.quality.results import mostly as mostly_of

Handler = Callable[[pd.DataFrame, dict[str, Any]], "ExpectationResult | None"]


class _UnsupportedError(Exception):
    """This expectation, on this data, is left to Great Expectations."""


def _map_result(
    exp: dict[str, Any], column: pd.Series, unexpected: pd.Series, *, nulls_count: bool = False
) -> ExpectationResult:
    """Result of a column-map expectation from a boolean ``unexpected`` mask.

    Nulls are excluded from the denominator (GX semantics), except for the not-null check
    itself, whose denominator is every row.
    """
    kwargs = exp["kwargs"]
    total = len(column) if nulls_count else int(column.notna().sum())
    positions = np.flatnonzero(unexpected.to_numpy())
    count = len(positions)
    mostly = float(kwargs.get("mostly", 1.0))
    success = True if total == 0 else (total - count) / total >= mostly
    examples = [jsonable(v) for v in column.iloc[positions[:MAX_EXAMPLES]]]
    return ExpectationResult(
        expectation=exp["type"],
        column=kwargs.get("column"),
        success=success,
        severity=severity(exp),
        unexpected_count=count,
        unexpected_percent=100.0 * count / total if total else 0.0,
        total=total,
        mostly=mostly_of(exp),
        examples=examples,
        unexpected_index=positions.tolist(),
    )


def _column(frame: pd.DataFrame, exp: dict[str, Any]) -> pd.Series:
    name = exp["kwargs"].get("column")
    if name not in frame.columns:
        raise _UnsupportedError  # GX reports the missing column; keep its wording
    return frame[name]


def _not_null(frame: pd.DataFrame, exp: dict[str, Any]) -> ExpectationResult:
    col = _column(frame, exp)
    return _map_result(exp, col, col.isna(), nulls_count=True)


def _between(frame: pd.DataFrame, exp: dict[str, Any]) -> ExpectationResult:
    col = _column(frame, exp)
    if not (pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col)):
        raise _UnsupportedError  # object columns: GX compares element-wise, and may raise
    kw = exp["kwargs"]
    lo, hi = kw.get("min_value"), kw.get("max_value")
    if (lo is None and hi is None) or (lo is not None and hi is not None and lo > hi):
        raise _UnsupportedError  # GX rejects these arguments; let it word the error
    values = col.astype("float64")
    ok = pd.Series(True, index=col.index)
    if lo is not None:
        ok &= values > lo if kw.get("strict_min") else values >= lo
    if hi is not None:
        ok &= values < hi if kw.get("strict_max") else values <= hi
    return _map_result(exp, col, col.notna() & ~ok)


def _in_set(frame: pd.DataFrame, exp: dict[str, Any]) -> ExpectationResult:
    col = _column(frame, exp)
    value_set = exp["kwargs"].get("value_set")
    if value_set is None:
        raise _UnsupportedError
    return _map_result(exp, col, col.notna() & ~col.isin(list(value_set)))


def _unique(frame: pd.DataFrame, exp: dict[str, Any]) -> ExpectationResult:
    col = _column(frame, exp)
    present = col.notna()
    dupes = col[present].duplicated(keep=False).reindex(col.index, fill_value=False)
    return _map_result(exp, col, present & dupes)


def _regex(frame: pd.DataFrame, exp: dict[str, Any]) -> ExpectationResult:
    col = _column(frame, exp)
    pattern = re.compile(exp["kwargs"]["regex"])
    present = col.notna()
    text = col[present].astype(str)
    matched = text.str.contains(pattern, regex=True).reindex(col.index, fill_value=True)
    return _map_result(exp, col, present & ~matched.astype(bool))


def _dtype_name(col: pd.Series) -> str:
    if not (pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col)):
        raise _UnsupportedError  # object/str columns: GX checks values one by one
    return str(col.dtype)


def _column_level(exp: dict[str, Any], success: bool, observed: Any) -> ExpectationResult:
    return ExpectationResult(
        expectation=exp["type"],
        column=exp["kwargs"].get("column"),
        success=success,
        severity=severity(exp),
        observed=observed,
    )


def _of_type(frame: pd.DataFrame, exp: dict[str, Any]) -> ExpectationResult:
    name = _dtype_name(_column(frame, exp))
    return _column_level(exp, name == exp["kwargs"]["type_"], name)


def _in_type_list(frame: pd.DataFrame, exp: dict[str, Any]) -> ExpectationResult:
    name = _dtype_name(_column(frame, exp))
    type_list = exp["kwargs"].get("type_list")
    if not type_list:
        raise _UnsupportedError
    return _column_level(exp, name in list(type_list), name)


def _column_exists(frame: pd.DataFrame, exp: dict[str, Any]) -> ExpectationResult:
    if "column_index" in exp["kwargs"]:
        raise _UnsupportedError
    return _column_level(exp, exp["kwargs"]["column"] in frame.columns, None)


def _columns_match_set(frame: pd.DataFrame, exp: dict[str, Any]) -> ExpectationResult:
    kw = exp["kwargs"]
    wanted = {str(c) for c in kw["column_set"]}
    have = [str(c) for c in frame.columns]
    exact = kw.get("exact_match", True)
    success = set(have) == wanted if exact else wanted <= set(have)
    return _column_level(exp, success, sorted(have))


def _columns_match_list(frame: pd.DataFrame, exp: dict[str, Any]) -> ExpectationResult:
    have = [str(c) for c in frame.columns]
    return _column_level(exp, have == [str(c) for c in exp["kwargs"]["column_list"]], have)


def row_count_ok(rows: int, kwargs: dict[str, Any]) -> bool:
    """Whether ``rows`` satisfies a row-count expectation's bounds (strict ones included)."""
    lo, hi = kwargs.get("min_value"), kwargs.get("max_value")
    above = lo is None or (rows > lo if kwargs.get("strict_min") else rows >= lo)
    below = hi is None or (rows < hi if kwargs.get("strict_max") else rows <= hi)
    return bool(above and below)


def _row_count(frame: pd.DataFrame, exp: dict[str, Any]) -> ExpectationResult:
    return _column_level(exp, row_count_ok(len(frame), exp["kwargs"]), len(frame))


HANDLERS: dict[str, Handler] = {
    "expect_column_values_to_not_be_null": _not_null,
    "expect_column_values_to_be_between": _between,
    "expect_column_values_to_be_in_set": _in_set,
    "expect_column_values_to_be_unique": _unique,
    "expect_column_values_to_match_regex": _regex,
    "expect_column_values_to_be_of_type": _of_type,
    "expect_column_values_to_be_in_type_list": _in_type_list,
    "expect_column_to_exist": _column_exists,
    "expect_table_columns_to_match_set": _columns_match_set,
    "expect_table_columns_to_match_ordered_list": _columns_match_list,
    "expect_table_row_count_to_be_between": _row_count,
}
# Arguments this engine interprets; any other argument sends the expectation to GX.
KNOWN_KWARGS = {
    "column",
    "mostly",
    "min_value",
    "max_value",
    "strict_min",
    "strict_max",
    "value_set",
    "regex",
    "type_",
    "type_list",
    "column_set",
    "exact_match",
    "column_list",
}


def repeated_values(
    partitions: Iterable[pd.DataFrame], columns: list[str]
) -> dict[str, np.ndarray]:
    """Per column, the sorted 64-bit hashes of values that occur more than once in any rows.

    One pass over the partitions (only ``columns`` are needed): what
    ``expect_column_values_to_be_unique`` needs to judge a partition against the whole table.
    """
    hashes: dict[str, list[np.ndarray]] = {c: [] for c in columns}
    for part in partitions:
        for col in columns:
            if col in part.columns:
                hashes[col].append(pd.util.hash_array(part[col].dropna().to_numpy()))
    out = {}
    for col, chunks in hashes.items():
        values, counts = np.unique(
            np.concatenate(chunks or [np.empty(0, np.uint64)]), return_counts=True
        )
        out[col] = values[counts > 1]
    return out


def unique_across(
    frame: pd.DataFrame, exp: dict[str, Any], repeated: np.ndarray
) -> ExpectationResult:
    """``expect_column_values_to_be_unique`` on one partition, judged against every row.

    Args:
        frame: One partition.
        exp: The expectation.
        repeated: :func:`repeated_values` of its column.
    """
    col = _column(frame, exp)
    present = col.notna().to_numpy()
    mask = np.zeros(len(col), dtype=bool)
    hashed = pd.util.hash_array(col[present].to_numpy())
    mask[present] = np.isin(hashed, repeated)
    return _map_result(exp, col, pd.Series(mask, index=col.index))


def results(frame: pd.DataFrame, suite: dict[str, Any]) -> list[ExpectationResult]:
    """Every expectation's result on ``frame``, in suite order (see :func:`evaluate`)."""
    data = frame.reset_index(drop=True)
    found: dict[int, ExpectationResult] = {}
    leftovers: list[tuple[int, dict[str, Any]]] = []
    for i, exp in enumerate(suite["expectations"]):
        handler = HANDLERS.get(exp["type"])
        if handler is None or set(exp.get("kwargs", {})) - KNOWN_KWARGS:
            leftovers.append((i, exp))
            continue
        try:
            result = handler(data, exp)
        except (_UnsupportedError, TypeError, ValueError, KeyError, re.error):
            # Odd arguments or data: Great Expectations decides and words the error.
            leftovers.append((i, exp))
            continue
        if result is not None:
            found[i] = result
    if leftovers:
        # Only types this engine does not handle need Great Expectations (and its import).
        rest = {"name": suite.get("name"), "expectations": [e for _, e in leftovers]}
        gx.check_suite(rest)
        raw = gx.run_suite_raw(data, rest)
        for (i, _), result in zip(leftovers, raw, strict=True):
            found[i] = result
    return [found[i] for i in range(len(suite["expectations"]))]


def evaluate(frame: pd.DataFrame, suite: dict[str, Any]) -> ValidationReport:
    """Evaluate a suite: supported expectations here, the rest with Great Expectations.

    Args:
        frame: The table; failing rows are reported as positions.
        suite: Suite mapping as stored in ``expectations/*.json``.

    Returns:
        A report of the same shape as :func:`mlpipe.quality.gx.run_suite`'s.

    Raises:
        ConfigError: The suite names an unknown expectation type.
    """
    return gx.build_report(frame, suite, results(frame, suite))
