"""Stage: batch predictions from a registered model, chunk by chunk (inputs larger than memory).

Each chunk is validated with the suite the model was trained with (target checks removed; row
quarantine applies; ``mostly`` judged for the whole batch), coerced like training data, scored,
and appended to the output with the model version and run id. The output appears only when the
whole batch succeeded.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
from prefect import task

from mlpipe.errors import DataError, DataValidationError
from mlpipe.handoff import BatchResult, PredictRequest, ServingModel
from mlpipe.io import tracking
from mlpipe.io.tables import TableWriter, iter_table
from mlpipe.quality.gate import REASONS_COLUMN, MostlyTally, apply_gate, run_checks
from mlpipe.quality.suites import batch_suite
from mlpipe.registry import resolve
from mlpipe.serving.schema import coerce_features

log = logging.getLogger("mlpipe.predict")
ADDED = ("model_name", "model_version", "model_run_id")


@task(name="resolve-model")
def resolve_model(name: str, version: str | None) -> ServingModel:
    """``models:/NAME@champion`` (or version N) with the schema and suite it was trained with."""
    return resolve(name, version)


def _rename_clashes(chunk: pd.DataFrame, outputs: set[str]) -> pd.DataFrame:
    clashes = [c for c in chunk.columns if c in outputs]
    if not clashes:
        return chunk
    return chunk.rename(columns={c: f"input_{c}" for c in clashes})


@task(name="predict")
def predict_file(model: ServingModel, request: PredictRequest, batch_run_id: str) -> BatchResult:
    """Validate, score and write the input chunk by chunk; log counts to the batch run."""
    schema = model.dataset
    suite = batch_suite(model.suite, schema.target, has_target=False) if model.suite else None
    if suite is None:
        log.warning(
            "%s v%s has no stored suite: inputs are not validated", model.name, model.version
        )
    pyfunc = tracking.load_pyfunc(model.uri)
    target = Path(request.output)
    quarantine_path = target.with_name(f"{target.stem}.quarantine.parquet")
    tally = MostlyTally(request.batch_alpha)
    rows_in = rows_predicted = rows_quarantined = 0
    outputs: set[str] | None = None
    renamed: set[str] = set()
    with TableWriter(target) as writer, TableWriter(quarantine_path) as quarantine:
        for i, chunk in enumerate(iter_table(request.input, request.chunk_rows, request.encoding)):
            rows_in += len(chunk)
            passing = chunk
            if suite is not None:
                report = run_checks(chunk, suite, "fast")
                passing, bad, outcome = apply_gate(chunk, report, 1.0, tally)
                if outcome.critical:
                    raise DataValidationError(
                        f"input chunk {i + 1} fails a critical expectation: "
                        f"{outcome.critical[0].describe()}"
                    )
                if len(bad):
                    quarantine.write(bad.astype({REASONS_COLUMN: "str"}))
                    rows_quarantined += len(bad)
            if len(passing):
                coerced, _ = coerce_features(passing, schema)
                scored = pyfunc.predict(coerced[schema.features]).reset_index(drop=True)
                if outputs is None:
                    outputs = {*scored.columns, *ADDED}
                kept = _rename_clashes(passing.reset_index(drop=True), outputs)
                renamed |= {c for c in passing.columns if c in outputs}
                out = pd.concat([kept, scored], axis=1)
                out["model_name"], out["model_version"] = model.name, model.version
                out["model_run_id"] = model.run_id
                writer.write(out)
                rows_predicted += len(out)
            log.info("chunk %d: %d rows in, %d predicted so far", i + 1, len(chunk), rows_predicted)
        if rows_in == 0:
            raise DataError(f"input file has no rows: {request.input}")
        missed = tally.failures()
        if missed:
            raise DataValidationError("input fails a critical expectation: " + "; ".join(missed))
        if rows_quarantined / rows_in > request.max_quarantine_rate:
            raise DataValidationError(
                f"{rows_quarantined} of {rows_in} input rows quarantined "
                f"({rows_quarantined / rows_in:.1%} > limit {request.max_quarantine_rate:.1%})"
            )
        if rows_predicted == 0:
            raise DataError(f"no rows of {request.input} passed validation: nothing to predict")
        if renamed:
            log.warning(
                "input columns %s clash with output columns: written as input_<name>",
                ", ".join(sorted(renamed)),
            )
        output = writer.commit()
        quarantine_file = quarantine.commit() if rows_quarantined else None
    if quarantine_file:
        tracking.log_artifact(batch_run_id, quarantine_file, "quarantine")
    tracking.log_metrics(
        batch_run_id,
        {
            "rows_in": rows_in,
            "rows_predicted": rows_predicted,
            "rows_quarantined": rows_quarantined,
        },
    )
    return BatchResult(
        output=output,
        rows_in=rows_in,
        rows_predicted=rows_predicted,
        rows_quarantined=rows_quarantined,
        model_version=model.version,
        quarantine=quarantine_file,
    )
