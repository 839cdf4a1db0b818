"""Batch scoring of one partition of raw rows: validate, quarantine, coerce, score.

:func:`score_partition` is the partition function of batch prediction, the same whether the
partitions are chunks read in this process or partitions mapped over Dask workers; its
:class:`Scored` summaries merge in partition order into the batch's counts and verdict.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from mlpipe.errors import DataValidationError
from mlpipe.io import tracking
from mlpipe.quality.gate import REASONS_COLUMN, MostlyTally, apply_gate, run_checks
from mlpipe.serving.schema import Schema, coerce_features

# Columns added to every scored row, after the model's outputs.
ADDED = ("model_name", "model_version", "model_run_id")


@dataclass
class Scored:
    """What scoring some partitions found: counts, ``mostly`` tallies, renamed columns."""

    alpha: float
    rows_in: int = 0
    rows_predicted: int = 0
    rows_quarantined: int = 0
    renamed: set[str] = field(default_factory=set)
    tally: MostlyTally | None = None

    def __post_init__(self) -> None:
        if self.tally is None:
            self.tally = MostlyTally(self.alpha)

    def merge(self, other: Scored) -> Scored:
        """Add a later partition's summary."""
        self.rows_in += other.rows_in
        self.rows_predicted += other.rows_predicted
        self.rows_quarantined += other.rows_quarantined
        self.renamed |= other.renamed
        assert self.tally is not None and other.tally is not None
        self.tally.merge(other.tally)
        return self


def score_partition(
    chunk: pd.DataFrame,
    number: int,
    model: Any,
    schema: Schema,
    suite: dict[str, Any] | None,
    alpha: float,
    version: tuple[str, str, str],
) -> tuple[tuple[pd.DataFrame, pd.DataFrame], Scored]:
    """Validate and score one partition of a batch.

    Args:
        chunk: Raw rows.
        number: The partition's position in the batch, from 1 (for messages).
        model: A loaded pyfunc, or the local folder of a downloaded one.
        schema: The schema the model was trained with.
        suite: Its expectation suite for new batches (target checks removed), or ``None``.
        alpha: Significance level of the batch's ``mostly`` judgement.
        version: ``(name, version, run id)`` of the model, added to every row.

    Returns:
        ``((scored rows, quarantined rows), summary)``: the input's columns (renamed
        ``input_<name>`` where they clash with an output), the model's outputs and
        :data:`ADDED`; the quarantined rows with their reasons.

    Raises:
        DataValidationError: The partition fails a critical expectation.
    """
    scored = Scored(alpha, rows_in=len(chunk))
    passing, bad = chunk, chunk.iloc[:0]
    if suite is not None:
        report = run_checks(chunk, suite, "fast")
        passing, bad, outcome = apply_gate(chunk, report, 1.0, scored.tally)
        if outcome.critical:
            raise DataValidationError(
                f"input chunk {number} fails a critical expectation: "
                f"{outcome.critical[0].describe()}"
            )
        bad = bad.astype({REASONS_COLUMN: "str"})
        scored.rows_quarantined = len(bad)
    if not len(passing):
        return (passing.iloc[:0], bad), scored
    pyfunc = tracking.load_downloaded(model) if isinstance(model, str) else model
    coerced, _ = coerce_features(passing, schema)
    outputs = pyfunc.predict(coerced[schema.features]).reset_index(drop=True)
    taken = {*outputs.columns, *ADDED}
    clashes = [c for c in passing.columns if c in taken]
    kept = passing.reset_index(drop=True).rename(columns={c: f"input_{c}" for c in clashes})
    out = pd.concat([kept, outputs], axis=1)
    out["model_name"], out["model_version"], out["model_run_id"] = version
    scored.rows_predicted, scored.renamed = len(out), set(clashes)
    return (out, bad), scored
