"""Stage: the data-quality gate before training (critical checks, row quarantine)."""

from __future__ import annotations

import json
import logging

from prefect import task

from mlpipe.config import ValidationConfig
from mlpipe.errors import DataValidationError
from mlpipe.handoff import LoadedData, RunContext, ValidatedData
from mlpipe.io import tracking
from mlpipe.io.tables import read_parquet, write_parquet, write_text
from mlpipe.orchestration import publish_markdown
from mlpipe.quality.gate import apply_gate, failure_message, run_checks
from mlpipe.quality.suites import training_suite, without_unvalidated
from mlpipe.registry import SUITE_ARTIFACT
from mlpipe.reports.validation import render_html, render_markdown

log = logging.getLogger("mlpipe.validate")


@task(name="validate")
def validate_data(
    data: LoadedData, cfg: ValidationConfig, run: RunContext, suite_path: str | None
) -> ValidatedData:
    """Run the gate; store the suite, the report and the quarantine; raise on a failed gate."""
    frame = read_parquet(data.path)
    suite = training_suite(data.dataset, suite_path)
    stored = write_text(json.dumps(suite, indent=2, default=str), run.path("suite.json"))
    tracking.log_artifact(run.run_id, stored, SUITE_ARTIFACT.rsplit("/", 1)[0])
    schema = without_unvalidated(data.dataset, suite)
    report = run_checks(frame, suite, cfg.engine)
    passing, quarantined, outcome = apply_gate(frame, report, cfg.max_quarantine_rate)
    quarantine_path = None
    if len(quarantined):
        quarantine_path = write_parquet(quarantined, run.path("quarantine.parquet"))
        tracking.log_artifact(run.run_id, quarantine_path, "validation")
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
    publish_markdown(markdown, f"validation-{report.suite}", "mlpipe data validation")
    if not outcome.passed:
        raise DataValidationError(failure_message(report, outcome))
    log.info(
        "validation passed: %d expectations on %d rows; %d rows quarantined (%.2f%%)",
        len(report.results),
        report.rows,
        outcome.rows_quarantined,
        100 * outcome.quarantine_rate,
    )
    path = write_parquet(passing, run.path("validated.parquet"))
    return ValidatedData(
        path=path, dataset=schema, gate=outcome, suite_path=stored, quarantine_path=quarantine_path
    )
