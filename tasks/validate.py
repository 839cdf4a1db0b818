"""Stage: validate the raw table with the dataset's Great Expectations suite (a gate)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import task

from tasks.core import gx, tracking
from tasks.core.errors import DataValidationError
from tasks.core.run import RunContext, logger, read_parquet
from tasks.core.schema import Schema
from tasks.load import MIN_ROWS, LoadedData

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def find_suite(schema: Schema, explicit: str | None) -> Path | None:
    """Locate the suite: explicit path, ``./expectations/<name>.json``, or the repository's.

    Returns:
        The suite path, or ``None`` when the dataset has no suite yet.
    """
    if explicit:
        return Path(explicit)
    for base in (Path.cwd(), PROJECT_ROOT):
        candidate = base / "expectations" / f"{schema.name}.json"
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


def failure_message(report: gx.ValidationReport) -> str:
    """One line naming what failed first and how much else failed."""
    failures = report.failures
    head = (
        f"data validation failed ({len(failures)} of {len(report.results)} expectations, "
        f"suite '{report.suite}'): {failures[0].describe()}"
    )
    if len(failures) > 1:
        head += f" [+{len(failures) - 1} more, see the validation summary]"
    return head


@task(name="validate")
def validate_data(data: LoadedData, run: RunContext, suite_path: str | None) -> gx.ValidationReport:
    """Run the suite, log JSON and summary to MLflow; raise DataValidationError on failure."""
    log = logger("validate")
    path = find_suite(data.dataset, suite_path)
    if path is None:
        log.warning("no suite expectations/%s.json: checking structure only", data.dataset.name)
        suite = structural_suite(data.dataset)
    else:
        suite = gx.load_suite(path)
    report = gx.run_suite(read_parquet(data.path), suite)
    tracking.log_dict(run.run_id, report.model_dump(mode="json"), "validation/result.json")
    tracking.log_text(run.run_id, report.summary(), "validation/summary.md")
    tracking.set_tags(
        run.run_id,
        {
            "mlpipe.validation.status": "passed" if report.success else "failed",
            "mlpipe.validation.suite": report.suite,
        },
    )
    tracking.log_metrics(run.run_id, {"validation_failed_expectations": len(report.failures)})
    if not report.success:
        log.error(
            "validation failed:\n%s", "\n".join(f"  - {r.describe()}" for r in report.failures)
        )
        raise DataValidationError(failure_message(report))
    log.info("validation passed: %d expectations on %d rows", len(report.results), report.rows)
    return report
