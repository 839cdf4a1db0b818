"""Stage: batch predictions from a registered model, chunk by chunk (inputs larger than memory).

Each chunk is validated with the dataset's suite (target expectations removed; row-level
quarantine applies), scored by the registered pyfunc, and appended to the output with the
model version and run id. The output is written to a temporary file and renamed at the end,
so a failed batch leaves nothing half-written.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import task
from pydantic import BaseModel, ConfigDict

from tasks.core import tracking
from tasks.core.errors import ConfigError, DataError, DataValidationError
from tasks.core.gx import load_suite
from tasks.core.run import logger
from tasks.core.schema import Schema
from tasks.validate import REASONS_COLUMN, apply_gate, find_suite, run_checks

TABLE_EXPECTATIONS = {"expect_table_row_count_to_be_between"}


class ServingModel(BaseModel):
    """A resolved registered model version."""

    model_config = ConfigDict(frozen=True)

    name: str
    version: str
    run_id: str
    uri: str
    dataset: Schema


class BatchResult(BaseModel):
    """What a batch produced."""

    model_config = ConfigDict(frozen=True)

    output: str
    rows_in: int
    rows_predicted: int
    rows_quarantined: int
    model_version: str
    quarantine: str | None = None


def prediction_suite(suite: dict[str, Any], target: str) -> dict[str, Any]:
    """The training suite without the target and without whole-table row counts.

    New inputs carry no target, and a chunk's size says nothing about data quality.
    """
    kept = []
    for exp in suite["expectations"]:
        kwargs = dict(exp.get("kwargs", {}))
        if exp["type"] in TABLE_EXPECTATIONS or kwargs.get("column") == target:
            continue
        for key in ("column_set", "column_list"):
            if key in kwargs:
                kwargs[key] = [c for c in kwargs[key] if c != target]
        kept.append({**exp, "kwargs": kwargs})
    return {**suite, "expectations": kept}


class MostlyTally:
    """Counts for ``mostly`` expectations summed over chunks, judged once for the whole input.

    A share like "at most 2% missing" says nothing about one chunk of 50 rows.
    """

    def __init__(self, suite: dict[str, Any]):
        self.mostly = {
            (e["type"], e["kwargs"].get("column")): float(e["kwargs"]["mostly"])
            for e in suite["expectations"]
            if float(e.get("kwargs", {}).get("mostly", 1.0)) < 1.0
        }
        self.counts: dict[tuple[str, Any], list[int]] = {k: [0, 0] for k in self.mostly}

    def covers(self, result: Any) -> bool:
        """Whether ``result`` is judged over the whole input rather than per chunk."""
        return (result.expectation, result.column) in self.mostly and result.error is None

    def add(self, chunk: pd.DataFrame, results: list[Any]) -> None:
        """Record this chunk's counts for every ``mostly`` expectation, passed or failed."""
        for r in results:
            if self.covers(r) and r.column in chunk.columns:
                nulls_count = r.expectation == "expect_column_values_to_not_be_null"
                total = len(chunk) if nulls_count else int(chunk[r.column].notna().sum())
                self.counts[(r.expectation, r.column)][0] += r.unexpected_count
                self.counts[(r.expectation, r.column)][1] += total

    def failures(self) -> list[str]:
        """The ``mostly`` expectations the whole input misses."""
        out = []
        for (kind, column), (bad, total) in self.counts.items():
            if total and (total - bad) / total < self.mostly[(kind, column)]:
                out.append(f"{kind} on column '{column}': {bad} of {total} rows fail "
                           f"(mostly={self.mostly[(kind, column)]})")  # fmt: skip
        return out


def read_chunks(path: Path, rows: int) -> Iterator[pd.DataFrame]:
    """Yield the input in chunks of ``rows`` rows (CSV or Parquet) without loading it whole."""
    suffix = path.suffix.lower()
    if suffix in {".parquet", ".pq"}:
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(path).iter_batches(batch_size=rows):
            yield batch.to_pandas()
    elif suffix in {".csv", ".tsv", ".txt"}:
        sep = "\t" if suffix == ".tsv" else ","
        yield from pd.read_csv(path, sep=sep, chunksize=rows, skipinitialspace=True)
    else:
        raise DataError(f"unsupported input file type '{suffix}': use .csv or .parquet")


class _Writer:
    """Appends frames to a CSV or Parquet file."""

    def __init__(self, path: Path):
        self.path = path
        self._parquet: Any = None
        self.csv = path.suffix.lower() in {".csv", ".tsv", ".txt"}
        if not self.csv and path.suffix.lower() not in {".parquet", ".pq"}:
            raise DataError(f"unsupported output file type '{path.suffix}': use .csv or .parquet")

    def write(self, frame: pd.DataFrame) -> None:
        if self.csv:
            header = not self.path.exists()
            frame.to_csv(self.path, mode="a", header=header, index=False)
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(frame, preserve_index=False)
        if self._parquet is None:
            self._parquet = pq.ParquetWriter(self.path, table.schema)
        self._parquet.write_table(table.cast(self._parquet.schema))

    def close(self) -> None:
        if self._parquet is not None:
            self._parquet.close()


@task(name="resolve-model")
def resolve_model(name: str, version: str | None) -> ServingModel:
    """Find ``models:/NAME@champion`` (or version N) and the schema it was trained with."""
    try:
        mv = tracking.version_info(name, version)
    except Exception:
        which = f"version {version}" if version else "champion"
        raise ConfigError(f"model '{name}' has no {which} in the registry") from None
    schema = tracking.load_dict(str(mv.run_id), "data/schema.json")
    if schema is None:
        raise ConfigError(f"{name} v{mv.version} was not trained by mlpipe (no data/schema.json)")
    return ServingModel(
        name=name,
        version=str(mv.version),
        run_id=str(mv.run_id),
        uri=f"models:/{name}/{mv.version}",
        dataset=Schema.model_validate(schema),
    )


@task(name="predict")
def predict_file(
    model: ServingModel,
    input_path: str,
    output_path: str,
    chunk_rows: int,
    max_quarantine_rate: float,
    batch_run_id: str,
) -> BatchResult:
    """Validate, score and write the input chunk by chunk; log counts to the batch run."""
    import mlflow

    log = logger("predict")
    source, target = Path(input_path), Path(output_path)
    suite_path = find_suite(model.dataset.name, None)
    suite = prediction_suite(load_suite(suite_path), model.dataset.target) if suite_path else None
    pyfunc = mlflow.pyfunc.load_model(model.uri)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Temporary names keep the real suffix (it picks the format) and are renamed at the end.
    partial = target.with_name(f".{target.stem}.partial{target.suffix}")
    quarantine_partial = target.with_name(f".{target.stem}.quarantine.partial.parquet")
    for stale in (partial, quarantine_partial):
        stale.unlink(missing_ok=True)
    writer, quarantine = _Writer(partial), None
    tally = MostlyTally(suite) if suite is not None else None
    rows_in = rows_predicted = rows_quarantined = 0
    try:
        for i, chunk in enumerate(read_chunks(source, chunk_rows)):
            chunk.columns = [str(c).strip() for c in chunk.columns]
            rows_in += len(chunk)
            passing = chunk
            if suite is not None:
                report = run_checks(chunk, suite, "fast")
                passing, bad, outcome = apply_gate(chunk, report, 1.0)
                if tally is not None:
                    tally.add(chunk, report.results)
                hard = [r for r in outcome.critical if not (tally and tally.covers(r))]
                if hard:
                    raise DataValidationError(
                        f"input chunk {i + 1} fails a critical expectation: {hard[0].describe()}"
                    )
                if len(bad):
                    quarantine = quarantine or _Writer(quarantine_partial)
                    quarantine.write(bad.astype({REASONS_COLUMN: "str"}))
                    rows_quarantined += len(bad)
            if len(passing):
                scored = pyfunc.predict(passing)
                out = pd.concat([passing.reset_index(drop=True), scored.reset_index(drop=True)],
                                axis=1)  # fmt: skip
                out["model_name"], out["model_version"] = model.name, model.version
                out["model_run_id"] = model.run_id
                writer.write(out)
                rows_predicted += len(out)
            log.info("chunk %d: %d rows in, %d predicted so far", i + 1, len(chunk), rows_predicted)
        if rows_in == 0:
            raise DataError(f"input file has no rows: {source}")
        missed = tally.failures() if tally else []
        if missed:
            raise DataValidationError("input fails a critical expectation: " + "; ".join(missed))
        if rows_quarantined / rows_in > max_quarantine_rate:
            raise DataValidationError(
                f"{rows_quarantined} of {rows_in} input rows quarantined "
                f"({rows_quarantined / rows_in:.1%} > limit {max_quarantine_rate:.1%})"
            )
    except BaseException:
        writer.close()
        if quarantine:
            quarantine.close()
        for leftover in (partial, quarantine_partial):
            leftover.unlink(missing_ok=True)
        raise
    writer.close()
    if rows_predicted == 0:
        partial.unlink(missing_ok=True)
        raise DataError(f"no rows of {source} passed validation: nothing to predict")
    os.replace(partial, target)
    quarantine_file = None
    if quarantine is not None:
        quarantine.close()
        quarantine_file = str(target.with_name(f"{target.stem}.quarantine.parquet"))
        os.replace(quarantine_partial, quarantine_file)
        tracking.log_artifact(batch_run_id, quarantine_file, "quarantine")
    tracking.log_metrics(batch_run_id, {
        "rows_in": rows_in, "rows_predicted": rows_predicted, "rows_quarantined": rows_quarantined,
    })  # fmt: skip
    return BatchResult(output=str(target), rows_in=rows_in, rows_predicted=rows_predicted,
                       rows_quarantined=rows_quarantined, model_version=model.version,
                       quarantine=quarantine_file)  # fmt: skip
