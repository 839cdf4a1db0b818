"""Stage: the data-quality gate.

Critical expectations stop the flow before training. Row-level expectations (``meta.severity:
row``) split the data: passing rows go on, failing rows go to ``quarantine.parquet`` with their
reasons, and the run fails when the quarantined share exceeds the configured rate.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import task
from pydantic import BaseModel, ConfigDict

from tasks.core import fastcheck, gx, tracking
from tasks.core.config import ValidationConfig
from tasks.core.errors import DataValidationError
from tasks.core.gx import ExpectationResult, ValidationReport
from tasks.core.report import render_html, render_markdown
from tasks.core.run import RunContext, logger, read_parquet, write_parquet
from tasks.core.schema import Schema
from tasks.load import MIN_ROWS, LoadedData

PROJECT_ROOT = Path(__file__).resolve().parents[1]
REASONS_COLUMN = "quarantine_reasons"


class GateOutcome(BaseModel):
    """What the gate decided: counts, reasons and the critical failures (if any)."""

    model_config = ConfigDict(frozen=True)

    rows_in: int
    rows_passed: int
    rows_quarantined: int
    reasons: dict[str, int]
    critical: list[ExpectationResult]
    max_quarantine_rate: float

    @property
    def quarantine_rate(self) -> float:
        """Share of rows quarantined."""
        return self.rows_quarantined / self.rows_in if self.rows_in else 0.0

    @property
    def passed(self) -> bool:
        """No critical failure and the quarantine within its limit."""
        return not self.critical and self.quarantine_rate <= self.max_quarantine_rate


class ValidatedData(BaseModel):
    """Rows that passed the gate, in the run directory, plus the gate's accounting."""

    model_config = ConfigDict(frozen=True)

    path: str
    dataset: Schema
    gate: GateOutcome
    quarantine_path: str | None = None


def find_suite(name: str, explicit: str | None) -> Path | None:
    """Locate the suite: explicit path, ``./expectations/<name>.json``, or the repository's.

    Returns:
        The suite path, or ``None`` when the dataset has no suite yet.
    """
    if explicit:
        return Path(explicit)
    for base in (Path.cwd(), PROJECT_ROOT):
        candidate = base / "expectations" / f"{name}.json"
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


def suite_for(schema: Schema, explicit: str | None) -> dict[str, Any]:
    """The dataset's suite, or the structural one (with a warning) when it has none."""
    path = find_suite(schema.name, explicit)
    if path is None:
        logger("validate").warning(
            "no suite expectations/%s.json: checking structure only "
            "(create one with `mlpipe expectations init`)",
            schema.name,
        )
        return structural_suite(schema)
    return gx.load_suite(path)


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
    logger("validate").warning(
        "columns not in suite '%s' are ignored as features: %s", suite.get("name"), extra
    )
    return schema.model_copy(
        update={
            "numeric": [c for c in schema.numeric if c not in extra],
            "categorical": [c for c in schema.categorical if c not in extra],
            "ignore": [*schema.ignore, *extra],
        }
    )


def run_checks(frame: pd.DataFrame, suite: dict[str, Any], engine: str) -> ValidationReport:
    """Evaluate a suite with the configured engine (``fast`` or ``gx``)."""
    return fastcheck.evaluate(frame, suite) if engine == "fast" else gx.run_suite(frame, suite)


def reason_code(result: ExpectationResult) -> str:
    """Short reason of a row-level failure: expectation type and column."""
    return f"{result.expectation.removeprefix('expect_')}:{result.column}"


def apply_gate(
    frame: pd.DataFrame, report: ValidationReport, max_quarantine_rate: float
) -> tuple[pd.DataFrame, pd.DataFrame, GateOutcome]:
    """Split rows by the report: passing rows, quarantined rows (with reasons), outcome.

    A row-level expectation quarantines every row it flags, whatever its ``mostly``: the
    quarantine rate is the tolerance. A row-level failure that names no rows (an error, or
    a table-level check) is treated as critical.

    Args:
        frame: The validated table (positions match the report's row indexes).
        report: Validation report.
        max_quarantine_rate: Largest tolerated share of quarantined rows.

    Returns:
        ``(passing, quarantined, outcome)``; ``quarantined`` has the original columns plus
        ``quarantine_reasons``.
    """
    data = frame.reset_index(drop=True)
    reasons: dict[int, list[str]] = {}
    critical: list[ExpectationResult] = []
    for result in report.results:
        row_level = result.severity == "row" and result.column is not None
        if row_level and result.error is None and (result.unexpected_index or result.success):
            for position in result.unexpected_index:
                reasons.setdefault(position, []).append(reason_code(result))
        elif not result.success:
            critical.append(result)
    flagged = sorted(reasons)
    quarantined = data.iloc[flagged].copy()
    quarantined[REASONS_COLUMN] = ["; ".join(reasons[p]) for p in flagged]
    passing = data.drop(index=flagged).reset_index(drop=True)
    counts = Counter(code for codes in reasons.values() for code in codes)
    outcome = GateOutcome(
        rows_in=len(data),
        rows_passed=len(passing),
        rows_quarantined=len(flagged),
        reasons=dict(counts.most_common()),
        critical=critical,
        max_quarantine_rate=max_quarantine_rate,
    )
    return passing, quarantined.reset_index(drop=True), outcome


def failure_message(report: ValidationReport, outcome: GateOutcome) -> str:
    """One line naming why the gate failed."""
    if outcome.critical:
        first = outcome.critical[0]
        line = (
            f"data validation failed ({len(outcome.critical)} critical of "
            f"{len(report.results)} expectations, suite '{report.suite}'): {first.describe()}"
        )
        if len(outcome.critical) > 1:
            line += f" [+{len(outcome.critical) - 1} more, see the validation summary]"
        return line
    top = ", ".join(f"{k} ({v})" for k, v in list(outcome.reasons.items())[:3])
    return (
        f"data validation failed: {outcome.rows_quarantined} of {outcome.rows_in} rows "
        f"quarantined ({outcome.quarantine_rate:.1%} > limit {outcome.max_quarantine_rate:.1%}); "
        f"top reasons: {top}"
    )


def _publish(report: ValidationReport, outcome: GateOutcome, run: RunContext) -> None:
    """Log the gate's evidence to MLflow and, when a flow runs, to the Prefect UI."""
    markdown = render_markdown(report, outcome)
    tracking.log_dict(run.run_id, report.model_dump(mode="json"), "validation/result.json")
    tracking.log_text(run.run_id, markdown, "validation/summary.md")
    tracking.log_text(run.run_id, render_html(report, outcome), "validation/report.html")
    tracking.set_tags(
        run.run_id,
        {
            "mlpipe.validation.status": "passed" if outcome.passed else "failed",
            "mlpipe.validation.suite": report.suite,
        },
    )
    tracking.log_metrics(
        run.run_id,
        {
            "validation_failed_expectations": len(report.failures),
            "rows_in": outcome.rows_in,
            "rows_quarantined": outcome.rows_quarantined,
            "quarantine_rate": outcome.quarantine_rate,
        },
    )
    publish_prefect_markdown(markdown, f"validation-{report.suite}")


def publish_prefect_markdown(markdown: str, key: str) -> None:
    """Attach a markdown artifact to the current Prefect run (no-op outside a run)."""
    import re

    from prefect.artifacts import create_markdown_artifact
    from prefect.context import get_run_context

    try:
        get_run_context()
    except Exception:  # no flow or task run: nothing to attach to
        return
    safe = re.sub(r"[^a-z0-9-]+", "-", key.lower()).strip("-")
    create_markdown_artifact(markdown=markdown, key=safe, description="mlpipe validation")


@task(name="validate")
def validate_data(
    data: LoadedData, cfg: ValidationConfig, run: RunContext, suite_path: str | None
) -> ValidatedData:
    """Run the gate; write passing rows and the quarantine; raise on a failed gate."""
    log = logger("validate")
    frame = read_parquet(data.path)
    suite = suite_for(data.dataset, suite_path)
    schema = without_unvalidated(data.dataset, suite)
    report = run_checks(frame, suite, cfg.engine)
    passing, quarantined, outcome = apply_gate(frame, report, cfg.max_quarantine_rate)
    quarantine_path = None
    if len(quarantined):
        quarantine_path = write_parquet(quarantined, run.path("quarantine.parquet"))
        tracking.log_artifact(run.run_id, quarantine_path, "validation")
    _publish(report, outcome, run)
    if not outcome.passed:
        lines = [f"  - {r.describe()}" for r in outcome.critical]
        lines += [f"  - quarantined {v} rows: {k}" for k, v in outcome.reasons.items()]
        log.error("validation failed:\n%s", "\n".join(lines))
        raise DataValidationError(failure_message(report, outcome))
    log.info(
        "validation passed: %d expectations on %d rows; %d rows quarantined (%.2f%%)",
        len(report.results),
        report.rows,
        outcome.rows_quarantined,
        100 * outcome.quarantine_rate,
    )
    path = write_parquet(passing, run.path("validated.parquet"))
    return ValidatedData(path=path, dataset=schema, gate=outcome, quarantine_path=quarantine_path)
