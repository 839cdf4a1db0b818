"""Validation reports people read: Markdown and self-contained HTML.

The HTML carries its own CSS and no scripts or external links, so it renders the same offline
(Great Expectations' Data Docs load CSS/JS from CDNs and render unstyled without internet).
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

from tasks.core.gx import ValidationReport

if TYPE_CHECKING:
    from tasks.validate import GateOutcome

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem;color:#1f2328}
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:1.6rem}
.passed{color:#1a7f37}.failed{color:#cf222e}
table{border-collapse:collapse;width:100%;font-size:.9rem}
th,td{border:1px solid #d0d7de;padding:.35rem .5rem;text-align:left;vertical-align:top}
th{background:#f6f8fa}tr.fail td{background:#ffebe9}tr.row td{background:#fff8c5}
code{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:.85rem}
.summary{display:flex;gap:2rem;margin:1rem 0}.summary div{background:#f6f8fa;padding:.6rem 1rem}
"""


def _verdict(report: ValidationReport, outcome: GateOutcome) -> str:
    return "PASSED" if outcome.passed else "FAILED"


def render_markdown(report: ValidationReport, outcome: GateOutcome) -> str:
    """One-screen Markdown summary: verdict, accounting, failures, quarantine reasons."""
    lines = [
        f"# Validation {_verdict(report, outcome)}: suite `{report.suite}`",
        "",
        f"- rows in: **{outcome.rows_in}**, passed: **{outcome.rows_passed}**, quarantined: "
        f"**{outcome.rows_quarantined}** ({outcome.quarantine_rate:.2%}, limit "
        f"{outcome.max_quarantine_rate:.0%})",
        f"- expectations: {len(report.results)}, failed: {len(report.failures)}, "
        f"critical failures: {len(outcome.critical)}",
        "",
    ]
    if outcome.critical:
        lines += ["## Critical failures (stop the run)", ""]
        lines += [f"- {r.describe()}" for r in outcome.critical]
        lines.append("")
    if outcome.reasons:
        lines += ["## Quarantined rows by reason", "", "| reason | rows |", "|---|---|"]
        lines += [f"| `{k}` | {v} |" for k, v in outcome.reasons.items()]
        lines.append("")
    lines += [
        "## All expectations",
        "",
        "| expectation | column | severity | result | failing rows | examples |",
        "|---|---|---|---|---|---|",
    ]
    for r in report.results:
        examples = ", ".join(repr(v) for v in r.examples) or (r.error or "")
        mark = "pass" if r.success else "FAIL"
        lines.append(
            f"| {r.expectation} | {r.column or ''} | {r.severity} | {mark} | "
            f"{r.unexpected_count} | {examples} |"
        )
    return "\n".join(lines) + "\n"


def _section(title: str, rows: str) -> str:
    if not rows:
        return ""
    return f"<h2>{title}</h2><table><tr><th>reason</th><th>rows</th></tr>{rows}</table>"


def render_html(report: ValidationReport, outcome: GateOutcome) -> str:
    """Self-contained HTML report (inline CSS; no scripts, fonts or links to fetch)."""
    e = html.escape
    verdict = _verdict(report, outcome)
    rows = []
    for r in report.results:
        cls = "fail" if not r.success else ("row" if r.unexpected_count else "")
        examples = ", ".join(repr(v) for v in r.examples) or (r.error or "")
        rows.append(
            f'<tr class="{cls}"><td><code>{e(r.expectation)}</code></td>'
            f"<td>{e(r.column or '')}</td><td>{e(r.severity)}</td>"
            f"<td>{'pass' if r.success else 'FAIL'}</td><td>{r.unexpected_count}</td>"
            f"<td>{r.unexpected_percent:.2f}%</td><td>{e(examples)}</td></tr>"
        )
    reasons = "".join(
        f"<tr><td><code>{e(k)}</code></td><td>{v}</td></tr>" for k, v in outcome.reasons.items()
    )
    critical = "".join(f"<li>{e(r.describe())}</li>" for r in outcome.critical)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Validation {e(verdict)}: {e(report.suite)}</title><style>{CSS}</style></head>
<body>
<h1>Validation <span class="{verdict.lower()}">{e(verdict)}</span>: suite
<code>{e(report.suite)}</code></h1>
<div class="summary">
<div>rows in<br><b>{outcome.rows_in}</b></div>
<div>passed<br><b>{outcome.rows_passed}</b></div>
<div>quarantined<br><b>{outcome.rows_quarantined}</b> ({outcome.quarantine_rate:.2%},
limit {outcome.max_quarantine_rate:.0%})</div>
<div>expectations<br><b>{len(report.results)}</b>, failed <b>{len(report.failures)}</b></div>
</div>
{f"<h2>Critical failures (stop the run)</h2><ul>{critical}</ul>" if critical else ""}
{_section("Quarantined rows by reason", reasons)}
<h2>All expectations</h2>
<table><tr><th>expectation</th><th>column</th><th>severity</th><th>result</th>
<th>failing rows</th><th>failing %</th><th>examples</th></tr>
{"".join(rows)}
</table>
</body></html>
"""
