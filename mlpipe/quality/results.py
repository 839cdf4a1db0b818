"""Results of expectations and suites, reduced to what people and the gate need."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict

from mlpipe.serving.schema import to_jsonable

MAX_EXAMPLES = 5


def jsonable(value: Any) -> Any:
    """A value as strict JSON: numpy scalars unwrapped, NaN -> None, +/-inf and others -> str."""
    value = to_jsonable(value)
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, float) and value in (float("inf"), float("-inf")):
        return str(value)
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return str(value)
    return value


class ExpectationResult(BaseModel):
    """Outcome of one expectation.

    Attributes:
        total: Rows the expectation judged (the denominator of ``mostly``).
        mostly: The expectation's ``mostly`` (share of rows that must pass), if it has one.
    """

    model_config = ConfigDict(frozen=True)

    expectation: str
    column: str | None
    success: bool
    severity: str = "critical"
    observed: Any = None
    unexpected_count: int = 0
    unexpected_percent: float = 0.0
    total: int = 0
    mostly: float | None = None
    examples: list[Any] = []
    unexpected_index: list[int] = []
    error: str | None = None

    def describe(self) -> str:
        """One line: expectation, column, failing count, examples or observed value."""
        where = f" on column '{self.column}'" if self.column else ""
        parts = [f"{self.expectation}{where}"]
        if self.error:
            parts.append(f"error: {self.error}")
        if self.unexpected_count:
            parts.append(f"{self.unexpected_count} failing rows ({self.unexpected_percent:.2f}%)")
        if self.examples:
            parts.append("examples: " + ", ".join(repr(v) for v in self.examples))
        elif self.observed is not None and not self.error:
            parts.append(f"observed: {self.observed!r}")
        return "; ".join(parts)


class ValidationReport(BaseModel):
    """Outcome of a suite on one table."""

    model_config = ConfigDict(frozen=True)

    suite: str
    success: bool
    rows: int
    results: list[ExpectationResult]

    @property
    def failures(self) -> list[ExpectationResult]:
        """The expectations that failed."""
        return [r for r in self.results if not r.success]


def severity(exp: dict[str, Any]) -> str:
    """An expectation's ``meta.severity`` (``critical`` unless it says ``row``)."""
    return str((exp.get("meta") or {}).get("severity", "critical"))


def mostly(exp: dict[str, Any]) -> float | None:
    """An expectation's ``mostly`` argument, if it has one below 1."""
    value = (exp.get("kwargs") or {}).get("mostly")
    try:
        return float(value) if value is not None and float(value) < 1 else None
    except (TypeError, ValueError):
        return None
