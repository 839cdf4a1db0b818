"""Stage: the data-quality gate before training (critical checks, row quarantine)."""

from __future__ import annotations

import json
import logging
from typing import Any

import pyarrow.parquet as pq
from prefect import task

from mlpipe.config import ValidationConfig
from mlpipe.errors import ConfigError, DataValidationError
from mlpipe.handoff import LoadedData, RunContext, ValidatedData
from mlpipe.io import tracking
from mlpipe.io.engine import engine_for
from mlpipe.io.tables import PartitionWriter, iter_partitions, partition_files, write_text
from mlpipe.orchestration import publish_markdown
from mlpipe.quality.fastcheck import repeated_values
from mlpipe.quality.gate import PartitionGate, failure_message, whole_table_only
from mlpipe.quality.gx import check_suite
from mlpipe.quality.suites import training_suite, without_unvalidated
from mlpipe.registry import SUITE_ARTIFACT
from mlpipe.reports.validation import render_html, render_markdown

log = logging.getLogger("mlpipe.validate")


@task(name="validate")
def validate_data(
    data: LoadedData, cfg: ValidationConfig, run: RunContext, suite_path: str | None
) -> ValidatedData:
    """Run the gate partition by partition; store the suite, report and quarantine.

    Passing rows go to ``validated/``, quarantined ones (with their reasons) to
    ``quarantine/``; every verdict is judged on the whole table. Raises on a failed gate.
    """
    suite = training_suite(data.dataset, suite_path)
    stored = write_text(json.dumps(suite, indent=2, default=str), run.path("suite.json"))
    tracking.log_artifact(run.run_id, stored, SUITE_ARTIFACT.rsplit("/", 1)[0])
    schema = without_unvalidated(data.dataset, suite)
    gate = PartitionGate(suite, cfg.engine, cfg.max_quarantine_rate, _repeated(data.path, suite))
    engine = engine_for(run.execution, run.run_dir)
    with (
        PartitionWriter(run.path("validated")) as passing,
        PartitionWriter(run.path("quarantine")) as quarantine,
    ):
        for checked in engine.rewrite(
            gate.check, data.path, [passing, quarantine], progress="validation"
        ):
            gate.merge(checked)
        report = gate.report()
        outcome = gate.outcome(report)
        quarantine_path = quarantine.commit() if quarantine.rows else None
        path = passing.commit() if outcome.passed and passing.rows else None
    if quarantine_path is not None:
        # A folder of partitions, under the name reviewers know (pandas reads it whole).
        tracking.log_artifact(run.run_id, quarantine_path, "validation/quarantine.parquet")
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
    if path is None:
        raise DataValidationError(
            f"data validation left no rows: all {outcome.rows_in} rows were quarantined "
            f"(reasons: {', '.join(list(outcome.reasons)[:3])})"
        )
    return ValidatedData(
        path=path, dataset=schema, gate=outcome, suite_path=stored, quarantine_path=quarantine_path
    )


def _repeated(path: str, suite: dict[str, Any]) -> dict[str, Any] | None:
    """For a table of several partitions: values repeated anywhere, per unique-checked column.

    Raises:
        ConfigError: The suite holds expectations only a whole table can answer.
    """
    if len(partition_files(path)) < 2:
        return None
    check_suite(suite)  # an unknown type is named as such, not as a whole-table check
    whole = whole_table_only(suite)
    if whole:
        raise ConfigError(
            f"expectations {', '.join(whole)} need the whole table at once, and this one is "
            "read in partitions: remove them from the suite, or raise dataset.partition_rows "
            "above the table's rows"
        )
    present = set(pq.read_schema(partition_files(path)[0]).names)
    columns = sorted(
        {
            str(column)
            for e in suite["expectations"]
            if e["type"] == "expect_column_values_to_be_unique"
            # A missing or absent column is reported by the check itself.
            and (column := (e.get("kwargs") or {}).get("column")) in present
        }
    )
    return (
        repeated_values(iter_partitions(path, columns, "uniqueness check"), columns)
        if columns
        else None
    )
