"""The validation report: one Markdown summary (Prefect UI, MLflow), rendered to HTML once."""

from __future__ import annotations

from mlpipe.quality.gate import GateOutcome
from mlpipe.quality.results import ValidationReport
from mlpipe.reports.markdown import cell, page, text


def render_markdown(report: ValidationReport, outcome: GateOutcome) -> str:
    """One-screen Markdown summary: verdict, accounting, failures, quarantine reasons."""
    verdict = "PASSED" if outcome.passed else "FAILED"
    lines = [
        f"# Validation {verdict}: suite `{cell(report.suite)}`",
        "",
        f"- rows in: **{outcome.rows_in}**, passed: **{outcome.rows_passed}**, quarantined: "
        f"**{outcome.rows_quarantined}** ({outcome.quarantine_rate:.2%}, limit "
        f"{outcome.max_quarantine_rate:.0%})",
        f"- expectations: {len(report.results)}, failed: {len(report.failures)}, "
        f"critical failures: {len(outcome.critical)}",
        "",
    ]
    if outcome.critical or outcome.mostly_failures:
        lines += ["## Critical failures (stop the run)", ""]
        lines += [f"- {text(r.describe())}" for r in outcome.critical]
        lines += [f"- {text(m)}" for m in outcome.mostly_failures]
        lines.append("")
    if outcome.reasons:
        lines += ["## Quarantined rows by reason", "", "| reason | rows |", "|---|---|"]
        lines += [f"| `{cell(k)}` | {v} |" for k, v in outcome.reasons.items()]
        lines.append("")
    lines += [
        "## All expectations",
        "",
        "| expectation | column | severity | result | failing rows | examples |",
        "|---|---|---|---|---|---|",
    ]
    for r in report.results:
        examples = ", ".join(repr(v) for v in r.examples) or (r.error or "")
        mark = "pass" if r.success else "**FAIL**"
        lines.append(
            f"| {r.expectation} | {cell(r.column or '')} | {r.severity} | {mark} | "
            f"{r.unexpected_count} | {cell(examples)} |"
        )
    return "\n".join(lines) + "\n"


def render_html(report: ValidationReport, outcome: GateOutcome) -> str:
    """The same summary as a self-contained HTML page."""
    verdict = "PASSED" if outcome.passed else "FAILED"
    return page(f"Validation {verdict}: {report.suite}", render_markdown(report, outcome))
