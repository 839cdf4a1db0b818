"""Write a Great Expectations suite from a reference snapshot of the data.

The suite is meant to be read and edited by a person: one expectation per line of intent, each
with ``meta.severity`` (``critical`` fails the run; ``row`` marks per-row checks).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from tasks.core.schema import Schema, looks_numeric, to_jsonable

# Ranges get this share of the observed span as slack on each side.
RANGE_MARGIN = 0.1
# Categorical value sets are listed only up to this many distinct values.
MAX_VALUE_SET = 50
# Row-count bounds: from this fraction of the reference size up to this multiple of it.
MIN_ROWS_FRACTION, MAX_ROWS_FACTOR = 0.1, 100


def _expect(kind: str, severity: str, **kwargs: Any) -> dict[str, Any]:
    return {"type": kind, "kwargs": kwargs, "meta": {"severity": severity}}


def _outward(value: float, up: bool, integral: bool) -> float | int:
    """Round a bound away from the data (never into it), to 6 decimals or to an integer."""
    scale = 1 if integral else 1_000_000
    rounded = (np.ceil(value * scale) if up else np.floor(value * scale)) / scale
    return int(rounded) if integral else float(rounded)


def suite_from_frame(frame: pd.DataFrame, schema: Schema, ordered: bool = False) -> dict[str, Any]:
    """Profile a reference table into a suite.

    Args:
        frame: Reference snapshot (raw, as the load stage sees it).
        schema: Resolved roles; ignored columns get existence checks, and uniqueness when
            every value is distinct (identifiers).
        ordered: Also require the column order of the reference.

    Returns:
        A suite mapping ready for ``json.dump``.
    """
    exps: list[dict[str, Any]] = [
        _expect("expect_table_columns_to_match_set", "critical",
                column_set=[str(c) for c in frame.columns], exact_match=False),
        _expect("expect_table_row_count_to_be_between", "critical",
                min_value=max(1, int(len(frame) * MIN_ROWS_FRACTION)),
                max_value=int(len(frame) * MAX_ROWS_FACTOR)),
    ]  # fmt: skip
    if ordered:
        exps.insert(1, _expect("expect_table_columns_to_match_ordered_list", "critical",
                               column_list=[str(c) for c in frame.columns]))  # fmt: skip
    for col in frame.columns:
        name = str(col)
        series = frame[col]
        role = (
            "target" if name == schema.target
            else "numeric" if name in schema.numeric
            else "categorical" if name in schema.categorical
            else "ignore"
        )  # fmt: skip
        if role == "ignore":
            present = series.dropna()
            if len(present) == len(series) and present.is_unique and len(series) > 1:
                exps.append(_expect("expect_column_values_to_not_be_null", "row", column=name))
                exps.append(_expect("expect_column_values_to_be_unique", "row", column=name))
            continue
        null_share = float(series.isna().mean())
        if null_share == 0:
            exps.append(_expect("expect_column_values_to_not_be_null", "row", column=name))
        elif null_share < 0.5:
            mostly = round(max(0.0, 1 - 2 * null_share - 0.01), 3)
            exps.append(
                _expect(
                    "expect_column_values_to_not_be_null", "critical", column=name, mostly=mostly
                )
            )
        numeric = role == "numeric" or (
            role == "target" and schema.task == "regression" and looks_numeric(series)
        )
        if numeric:
            values = pd.to_numeric(series, errors="coerce").dropna()
            if values.empty:
                continue
            integral = bool(np.all(values == np.round(values)))
            lo, hi = float(values.min()), float(values.max())
            slack = (hi - lo) * RANGE_MARGIN
            # Non-negative data (counts, sizes) stays non-negative.
            low = max(0.0, lo - slack) if lo >= 0 else lo - slack
            exps.append(
                _expect("expect_column_values_to_be_between", "row", column=name,
                        min_value=_outward(low, up=False, integral=integral),
                        max_value=_outward(hi + slack, up=True, integral=integral))
            )  # fmt: skip
        else:
            distinct = series.dropna().unique()
            if 0 < len(distinct) <= MAX_VALUE_SET:
                values_set = sorted((to_jsonable(v) for v in distinct), key=str)
                exps.append(
                    _expect("expect_column_values_to_be_in_set", "row", column=name,
                            value_set=values_set)
                )  # fmt: skip
    return {
        "name": schema.name,
        "meta": {
            "generated_by": "mlpipe suite_from_frame",
            "reference_rows": len(frame),
            "notes": "severity critical fails the run; severity row marks per-row checks",
        },
        "expectations": exps,
    }
