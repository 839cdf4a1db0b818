"""Expectation suites: where they live, how they are read, and how one is written from data.

Suites are Great Expectations JSON files in ``expectations/`` (in git), meant to be read and
edited by a person: one expectation per line of intent, each with ``meta.severity``
(``critical`` fails the run; ``row`` marks per-row checks). The suite that gated a model's
training is stored with the model, so later batches are judged by the same rules.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlpipe.config import check_name
from mlpipe.data.roles import MIN_ROWS, looks_numeric
from mlpipe.errors import ConfigError
from mlpipe.serving.schema import Schema, to_jsonable

SUITES_DIR = "expectations"
PROJECT_ROOT = Path(__file__).resolve().parents[2]
TABLE_EXPECTATIONS = {"expect_table_row_count_to_be_between"}

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
        _expect(
            "expect_table_columns_to_match_set",
            "critical",
            column_set=[str(c) for c in frame.columns],
            exact_match=False,
        ),
        _expect(
            "expect_table_row_count_to_be_between",
            "critical",
            min_value=max(1, int(len(frame) * MIN_ROWS_FRACTION)),
            max_value=int(len(frame) * MAX_ROWS_FACTOR),
        ),
    ]
    if ordered:
        exps.insert(
            1,
            _expect(
                "expect_table_columns_to_match_ordered_list",
                "critical",
                column_list=[str(c) for c in frame.columns],
            ),
        )
    for col in frame.columns:
        name = str(col)
        series = frame[col]
        role = (
            "target"
            if name == schema.target
            else "numeric"
            if name in schema.numeric
            else "categorical"
            if name in schema.categorical
            else "ignore"
        )
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
                _expect(
                    "expect_column_values_to_be_between",
                    "row",
                    column=name,
                    min_value=_outward(low, up=False, integral=integral),
                    max_value=_outward(hi + slack, up=True, integral=integral),
                )
            )
        else:
            distinct = series.dropna().unique()
            if 0 < len(distinct) <= MAX_VALUE_SET:
                values_set = sorted((to_jsonable(v) for v in distinct), key=str)
                exps.append(
                    _expect(
                        "expect_column_values_to_be_in_set",
                        "row",
                        column=name,
                        value_set=values_set,
                    )
                )
    return {
        "name": schema.name,
        "meta": {
            "generated_by": "mlpipe suite_from_frame",
            "reference_rows": len(frame),
            "notes": "severity critical fails the run; severity row marks per-row checks",
        },
        "expectations": exps,
    }


def load_suite(path: str | Path) -> dict[str, Any]:
    """Read and check a suite JSON file (``{"name": ..., "expectations": [...]}``).

    Raises:
        ConfigError: The file is missing, unreadable or not a well-formed suite.
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"expectation suite not found: {p}")
    try:
        suite = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"expectation suite {p} is not valid JSON: {err}") from None
    except OSError as err:
        raise ConfigError(f"cannot read expectation suite {p}: {err.strerror}") from None
    if not isinstance(suite, dict):
        raise ConfigError(f"expectation suite {p} must hold a JSON object")
    suite.setdefault("name", p.stem)
    return check_structure(suite, str(p))


def check_structure(suite: dict[str, Any], where: str) -> dict[str, Any]:
    """Each expectation is an object with a string ``type`` and an object ``kwargs``.

    Raises:
        ConfigError: Naming the first malformed expectation.
    """
    exps = suite.get("expectations")
    if not isinstance(exps, list):
        raise ConfigError(f"expectation suite {where} needs a list under 'expectations'")
    for i, exp in enumerate(exps):
        if not isinstance(exp, dict) or not isinstance(exp.get("type"), str):
            raise ConfigError(f"expectation suite {where}: expectation {i + 1} has no 'type'")
        if not isinstance(exp.setdefault("kwargs", {}), dict):
            raise ConfigError(
                f"expectation suite {where}: expectation {i + 1} ({exp['type']}): "
                "'kwargs' must be an object"
            )
    return suite


def suite_path(name: str, base: Path | None = None) -> Path:
    """``expectations/<name>.json`` under ``base`` (default: the working directory).

    Raises:
        ConfigError: The name would leave the expectations folder.
    """
    try:
        check_name(name, "dataset name")
    except ValueError as err:
        raise ConfigError(str(err)) from None
    folder = (base or Path.cwd()) / SUITES_DIR
    path = folder / f"{name}.json"
    if not path.resolve().is_relative_to(folder.resolve()):
        raise ConfigError(f"dataset name {name!r} would leave {folder}")
    return path


def find_suite(name: str, explicit: str | None) -> Path | None:
    """Locate a dataset's suite: explicit path, ``./expectations/<name>.json``, or the project's.

    Returns:
        The suite path, or ``None`` when the dataset has no suite yet.
    """
    if explicit:
        return Path(explicit)
    for base in (Path.cwd(), PROJECT_ROOT):
        candidate = suite_path(name, base)
        if candidate.is_file():
            return candidate
    return None


def structural_suite(schema: Schema) -> dict[str, Any]:
    """Minimal suite for data without a suite of its own: the columns exist, enough rows."""
    expectations: list[dict[str, Any]] = [
        {"type": "expect_column_to_exist", "kwargs": {"column": c}}
        for c in [schema.target, *schema.features]
    ]
    expectations.append(
        {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": MIN_ROWS}}
    )
    expectations.append(
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": schema.target}}
    )
    return {"name": f"{schema.name}-structural", "expectations": expectations}


def training_suite(schema: Schema, explicit: str | None) -> dict[str, Any]:
    """The dataset's suite, or the structural one (with a warning) when it has none."""
    path = find_suite(schema.name, explicit)
    if path is None:
        logging.getLogger("mlpipe.validate").warning(
            "no suite expectations/%s.json: checking structure only "
            "(create one with `mlpipe expectations init`)",
            schema.name,
        )
        return structural_suite(schema)
    return hashed_columns(load_suite(path), schema.pii)


# What a hashed column still has: presence, missing values, uniqueness (hashes keep equality).
_HASH_SAFE = {
    "expect_column_to_exist",
    "expect_column_values_to_not_be_null",
    "expect_column_values_to_be_unique",
}


def hashed_columns(suite: dict[str, Any], pii: Sequence[str]) -> dict[str, Any]:
    """The suite without value checks on personal-data columns (their values are hashes).

    A suite written before a column was listed in ``dataset.pii`` checks its raw values (a
    set of islands, a range); hashed values would fail every row.
    """
    if not pii:
        return suite
    kept = [
        exp
        for exp in suite["expectations"]
        if exp.get("kwargs", {}).get("column") not in pii or exp["type"] in _HASH_SAFE
    ]
    return {**suite, "expectations": kept}


def batch_suite(
    suite: dict[str, Any], target: str, has_target: bool, pii: Sequence[str] = ()
) -> dict[str, Any]:
    """A training suite for a new batch.

    Whole-table row counts are dropped (a batch's size says nothing about quality), and so are
    the target's checks when the batch carries no target (new inputs to score), and every
    check of a personal-data column (``pii``: never a feature, so a batch need not send it).
    """
    kept = []
    dropped = {*pii, *([] if has_target else [target])}
    for exp in suite["expectations"]:
        kwargs = dict(exp.get("kwargs", {}))
        if exp["type"] in TABLE_EXPECTATIONS:
            continue
        if dropped:
            if kwargs.get("column") in dropped:
                continue
            for key in ("column_set", "column_list"):
                if key in kwargs:
                    kwargs[key] = [c for c in kwargs[key] if c not in dropped]
        kept.append({**exp, "kwargs": kwargs})
    return {**suite, "expectations": kept}


def without_unvalidated(schema: Schema, suite: dict[str, Any]) -> Schema:
    """Ignore feature columns that the suite's column set does not know.

    Unvalidated data must not reach training. Without a column-set expectation every column
    is kept.
    """
    known: set[str] = set()
    for exp in suite["expectations"]:
        if exp.get("type") == "expect_table_columns_to_match_set":
            known |= {str(c) for c in exp["kwargs"].get("column_set", [])}
    if not known:
        return schema
    extra = [c for c in schema.features if c not in known]
    if not extra:
        return schema
    logging.getLogger("mlpipe.validate").warning(
        "columns not in suite '%s' are ignored as features: %s", suite.get("name"), extra
    )
    return schema.model_copy(
        update={
            "numeric": [c for c in schema.numeric if c not in extra],
            "categorical": [c for c in schema.categorical if c not in extra],
            "ignore": [*schema.ignore, *extra],
        }
    )
