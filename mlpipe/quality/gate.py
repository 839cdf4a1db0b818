"""The data-quality gate: one owner for turning a validation report into a decision.

Critical expectations stop the flow. Row-level expectations (``meta.severity: row``) split the
data: passing rows go on, failing rows are quarantined with their reasons, and the gate fails when
the quarantined share exceeds its limit.

``mostly`` on a new batch is judged with its size in mind (:class:`MostlyTally`): a one-sided
binomial test asks whether the batch's failure rate is significantly above what ``mostly``
allows, so one missing value in 20 rows does not stop a batch while a real rise still does.
Counts are summed over chunks and judged once for the whole input.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict
from scipy import stats

from mlpipe.quality import fastcheck, gx
from mlpipe.quality.results import MAX_EXAMPLES, ExpectationResult, ValidationReport

REASONS_COLUMN = "quarantine_reasons"


class GateOutcome(BaseModel):
    """What the gate decided: counts, reasons and the failures (if any)."""

    model_config = ConfigDict(frozen=True)

    rows_in: int
    rows_passed: int
    rows_quarantined: int
    reasons: dict[str, int]
    critical: list[ExpectationResult]
    max_quarantine_rate: float
    mostly_failures: list[str] = []

    @property
    def quarantine_rate(self) -> float:
        """Share of rows quarantined."""
        return self.rows_quarantined / self.rows_in if self.rows_in else 0.0

    @property
    def passed(self) -> bool:
        """No critical failure, no ``mostly`` failure and the quarantine within its limit."""
        return (
            not self.critical
            and not self.mostly_failures
            and self.quarantine_rate <= self.max_quarantine_rate
        )


def run_checks(frame: pd.DataFrame, suite: dict[str, Any], engine: str) -> ValidationReport:
    """Evaluate a suite with the configured engine (``fast`` or ``gx``)."""
    return fastcheck.evaluate(frame, suite) if engine == "fast" else gx.run_suite(frame, suite)


# Judged value by value, so the counts of partitions add up, except these, which compare rows.
_ACROSS_ROWS = {
    "expect_column_values_to_be_increasing",
    "expect_column_values_to_be_decreasing",
}
_UNIQUE = "expect_column_values_to_be_unique"
_ROW_COUNT = "expect_table_row_count_to_be_between"
# About the columns, the same in every partition: a failure anywhere is the table's.
_STRUCTURE = {
    "expect_column_to_exist",
    "expect_table_columns_to_match_set",
    "expect_table_columns_to_match_ordered_list",
    "expect_column_values_to_be_of_type",
    "expect_column_values_to_be_in_type_list",
}


def _mergeable(kind: str) -> bool:
    per_value = kind.startswith("expect_column_values_to_") and kind not in _ACROSS_ROWS
    per_value = per_value or kind.startswith("expect_column_value_lengths_to_")
    return per_value or kind in _STRUCTURE or kind == _ROW_COUNT


def whole_table_only(suite: dict[str, Any]) -> list[str]:
    """Expectation types of ``suite`` that cannot be judged partition by partition.

    Aggregates (``expect_column_mean_to_be_between``, ...) and row-order checks need the
    whole table in memory at once.
    """
    kinds = [str(e.get("type")) for e in suite.get("expectations", [])]
    return sorted({k for k in kinds if not _mergeable(k)})


def _merge(a: ExpectationResult, b: ExpectationResult, exp: dict[str, Any]) -> ExpectationResult:
    """One expectation's result over two consecutive partitions."""
    if a.error is not None:
        return a
    if b.error is not None:
        return b
    kind = exp["type"]
    if kind in _STRUCTURE:
        return a if not a.success else b
    if kind == _ROW_COUNT:
        rows = int(a.observed or 0) + int(b.observed or 0)
        ok = fastcheck.row_count_ok(rows, exp.get("kwargs", {}))
        return a.model_copy(update={"observed": rows, "success": ok})
    count, total = a.unexpected_count + b.unexpected_count, a.total + b.total
    share = float((exp.get("kwargs") or {}).get("mostly", 1.0))
    return a.model_copy(
        update={
            "unexpected_count": count,
            "total": total,
            "unexpected_percent": 100.0 * count / total if total else 0.0,
            "success": total == 0 or (total - count) / total >= share,
            "examples": (a.examples + b.examples)[:MAX_EXAMPLES],
            "unexpected_index": [],
        }
    )


@dataclass(frozen=True)
class Checked:
    """One partition's results, as :meth:`PartitionGate.merge` adds them up."""

    found: list[ExpectationResult]
    rows: int
    quarantined: int
    reasons: dict[str, int]
    columns: list[str]


class PartitionGate:
    """The gate over a table validated one partition at a time, in row order.

    Each partition's rows are quarantined by its own results (a row-level expectation flags
    rows whatever its ``mostly``); every verdict (``mostly``, row counts, critical failures)
    is judged once on the results merged over all partitions, as on the whole table.
    ``expect_column_values_to_be_unique`` compares each partition with every row through
    :func:`mlpipe.quality.fastcheck.repeated_values`.

    Args:
        suite: The suite (every expectation mergeable: see :func:`whole_table_only`).
        engine: ``fast`` or ``gx``.
        max_quarantine_rate: Largest tolerated share of quarantined rows.
        repeated: Per unique-checked column, the hashes of values repeated anywhere; ``None``
            when the table is one partition.
    """

    def __init__(
        self,
        suite: dict[str, Any],
        engine: str,
        max_quarantine_rate: float,
        repeated: dict[str, Any] | None = None,
    ):
        self.suite = suite
        self.engine = engine
        self.max_quarantine_rate = max_quarantine_rate
        self.repeated = repeated
        self.merged: list[ExpectationResult] | None = None
        self.rows = 0
        self.quarantined = 0
        self.reasons: Counter[str] = Counter()
        self.columns: pd.Index | None = None

    def _results(self, frame: pd.DataFrame) -> list[ExpectationResult]:
        if self.engine == "fast":
            found = fastcheck.results(frame, self.suite)
        else:
            gx.check_suite(self.suite)
            found = gx.run_suite_raw(frame.reset_index(drop=True), self.suite)
        if self.repeated:
            found = [
                fastcheck.unique_across(frame.reset_index(drop=True), exp, self.repeated[col])
                if exp["type"] == _UNIQUE
                and (col := exp["kwargs"].get("column")) in self.repeated
                and col in frame.columns
                else r
                for r, exp in zip(found, self.suite["expectations"], strict=True)
            ]
        return found

    def add(self, frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Check one partition; return its passing and quarantined rows."""
        (passing, quarantined), checked = self.check(frame)
        self.merge(checked)
        return passing, quarantined

    def check(self, frame: pd.DataFrame) -> tuple[tuple[pd.DataFrame, pd.DataFrame], Checked]:
        """Check one partition, changing nothing here (a worker may run it).

        Returns:
            ``((passing, quarantined), checked)``: the rows, and what :meth:`merge` adds up.
        """
        found = self._results(frame)
        report = gx.build_report(frame.reset_index(drop=True), self.suite, found)
        passing, quarantined, outcome = apply_gate(frame, report, self.max_quarantine_rate)
        checked = Checked(
            found=found,
            rows=len(frame),
            quarantined=len(quarantined),
            reasons=dict(outcome.reasons),
            columns=list(frame.columns),
        )
        return (passing, quarantined), checked

    def merge(self, checked: Checked) -> None:
        """Add one partition's results (partitions in row order)."""
        self.rows += checked.rows
        self.quarantined += checked.quarantined
        self.reasons.update(checked.reasons)
        if self.columns is None:
            self.columns = pd.Index(checked.columns)
        exps = self.suite["expectations"]
        self.merged = (
            checked.found
            if self.merged is None
            else [_merge(a, b, e) for a, b, e in zip(self.merged, checked.found, exps, strict=True)]
        )

    def report(self) -> ValidationReport:
        """The report of the whole table."""
        header = pd.DataFrame(columns=self.columns if self.columns is not None else [])
        return gx.build_report(header, self.suite, self.merged or [], rows=self.rows)

    def outcome(self, report: ValidationReport) -> GateOutcome:
        """The gate's decision on the whole table."""
        critical = [
            r
            for r in report.results
            if not r.success
            and not (
                r.severity == "row"
                and r.column is not None
                and r.error is None
                and self.reasons.get(reason_code(r), 0) > 0
            )
        ]
        return GateOutcome(
            rows_in=self.rows,
            rows_passed=self.rows - self.quarantined,
            rows_quarantined=self.quarantined,
            reasons=dict(self.reasons.most_common()),
            critical=critical,
            max_quarantine_rate=self.max_quarantine_rate,
        )


def reason_code(result: ExpectationResult) -> str:
    """Short reason of a row-level failure: expectation type and column."""
    return f"{result.expectation.removeprefix('expect_')}:{result.column}"


class MostlyTally:
    """Failure counts of ``mostly`` expectations, summed over chunks, judged for the batch.

    Args:
        alpha: Significance level of the one-sided binomial test.
    """

    def __init__(self, alpha: float):
        self.alpha = alpha
        self.counts: dict[tuple[str, str | None], list[float]] = {}

    @staticmethod
    def covers(result: ExpectationResult) -> bool:
        """Whether ``result`` is a critical ``mostly`` check judged over the whole batch."""
        return result.mostly is not None and result.severity != "row" and result.error is None

    def add(self, results: list[ExpectationResult]) -> None:
        """Record one chunk's counts for every ``mostly`` expectation, passed or failed."""
        for r in results:
            if self.covers(r):
                entry = self.counts.setdefault((r.expectation, r.column), [0, 0, r.mostly or 1])
                entry[0] += r.unexpected_count
                entry[1] += r.total

    def merge(self, other: MostlyTally) -> MostlyTally:
        """Add another part of the batch's counts (a partition scored elsewhere)."""
        for key, (bad, total, share) in other.counts.items():
            entry = self.counts.setdefault(key, [0, 0, share])
            entry[0] += bad
            entry[1] += total
        return self

    def failures(self) -> list[str]:
        """The ``mostly`` expectations the batch misses significantly, one line each."""
        out = []
        for (kind, column), (bad, total, share) in self.counts.items():
            if not total or bad / total <= 1 - share:
                continue
            allowed = 1 - share
            p_value = stats.binomtest(int(bad), int(total), allowed, alternative="greater").pvalue
            if p_value < self.alpha:
                out.append(
                    f"{kind} on column '{column}': {int(bad)} of {int(total)} rows fail "
                    f"({bad / total:.1%}, mostly={share} allows {allowed:.1%}; binomial "
                    f"p={p_value:.2g} < {self.alpha})"
                )
        return out


def apply_gate(
    frame: pd.DataFrame,
    report: ValidationReport,
    max_quarantine_rate: float,
    tally: MostlyTally | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, GateOutcome]:
    """Split rows by the report: passing rows, quarantined rows (with reasons), outcome.

    A row-level expectation quarantines every row it flags, whatever its ``mostly``: the
    quarantine rate is the tolerance. A row-level failure that names no rows (an error, or
    a table-level check) is treated as critical. With a ``tally`` (a new batch), critical
    ``mostly`` checks are left to the tally instead of failing here.

    Args:
        frame: The validated table (positions match the report's row indexes).
        report: Validation report.
        max_quarantine_rate: Largest tolerated share of quarantined rows.
        tally: Batch mode: collects ``mostly`` counts; judge them with :func:`with_mostly`.

    Returns:
        ``(passing, quarantined, outcome)``; ``quarantined`` has the original columns plus
        ``quarantine_reasons``.
    """
    data = frame.reset_index(drop=True)
    reasons: dict[int, list[str]] = {}
    critical: list[ExpectationResult] = []
    if tally is not None:
        tally.add(report.results)
    for result in report.results:
        row_level = result.severity == "row" and result.column is not None
        if row_level and result.error is None and (result.unexpected_index or result.success):
            for position in result.unexpected_index:
                reasons.setdefault(position, []).append(reason_code(result))
        elif not result.success and not (tally is not None and tally.covers(result)):
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


def with_mostly(outcome: GateOutcome, tally: MostlyTally) -> GateOutcome:
    """The outcome with the batch's ``mostly`` verdicts added."""
    return outcome.model_copy(update={"mostly_failures": tally.failures()})


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
    if outcome.mostly_failures:
        more = len(outcome.mostly_failures) - 1
        extra = f" [+{more} more]" if more else ""
        return f"data validation failed: {outcome.mostly_failures[0]}{extra}"
    top = ", ".join(f"{k} ({v})" for k, v in list(outcome.reasons.items())[:3])
    return (
        f"data validation failed: {outcome.rows_quarantined} of {outcome.rows_in} rows "
        f"quarantined ({outcome.quarantine_rate:.1%} > limit {outcome.max_quarantine_rate:.1%}); "
        f"top reasons: {top}"
    )
