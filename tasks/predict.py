"""Stage: batch predictions from a registered model, chunk by chunk (inputs larger than memory).

Each chunk is validated with the suite the model was trained with (target checks removed; row
quarantine applies; ``mostly`` judged for the whole batch), coerced like training data, scored,
and appended to the output with the model version and run id. The output appears only when the
whole batch succeeded. With ``execution.engine: dask`` the chunks are staged as partitions
beside the output and scored on the cluster's workers by the same partition function.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import task

from mlpipe.batch import Scored, score_partition
from mlpipe.data.privacy import masker
from mlpipe.errors import DataError, DataValidationError
from mlpipe.handoff import BatchResult, PredictRequest, ServingModel
from mlpipe.io import progress, tracking
from mlpipe.io.engine import engine_for, shutdown
from mlpipe.io.processes import owner, owner_alive
from mlpipe.io.sources import beside, readable, writable
from mlpipe.io.tables import (
    PartitionWriter,
    TableWriter,
    iter_partitions,
    iter_table,
    known_rows,
    write_part,
)
from mlpipe.quality.suites import batch_suite
from mlpipe.registry import resolve

log = logging.getLogger("mlpipe.predict")
STAGING = ".mlpipe-"  # .<output name>.mlpipe-<id>: a batch's partitions for the cluster
OWNER_FILE = "owner"  # in a staging folder: the process that made it


@task(name="resolve-model")
def resolve_model(name: str, version: str | None) -> ServingModel:
    """``models:/NAME@champion`` (or version N) with the schema and suite it was trained with."""
    return resolve(name, version)


@contextlib.contextmanager
def staged(request: PredictRequest) -> Iterator[PredictRequest]:
    """The request with local paths: a remote input copied here, a remote output uploaded.

    The upload happens when the ``with`` body succeeds; local copies are always deleted.
    """
    with readable(request.input) as local_in, writable(request.output) as local_out:
        yield request.model_copy(update={"input": local_in, "output": local_out})


def published(result: BatchResult, request: PredictRequest) -> BatchResult:
    """The result of a :func:`staged` request, naming where its files ended up."""
    quarantine = result.quarantine and beside(request.output, result.quarantine)
    return result.model_copy(update={"output": request.output, "quarantine": quarantine})


@task(name="predict")
def predict_file(model: ServingModel, request: PredictRequest, batch_run_id: str) -> BatchResult:
    """Validate, score and write the input chunk by chunk; log counts to the batch run."""
    suite = (
        batch_suite(model.suite, model.dataset.target, False, model.dataset.pii)
        if model.suite
        else None
    )
    if suite is None:
        log.warning(
            "%s v%s has no stored suite: inputs are not validated", model.name, model.version
        )
    target = Path(request.output)
    quarantine_path = target.with_name(f"{target.stem}.quarantine.parquet")
    total = Scored(request.batch_alpha)
    mask = masker(model.dataset.pii)  # the quarantine is logged to MLflow: no personal data
    scored = _on_cluster if request.execution.engine == "dask" else _here
    rows = known_rows(request.input)
    of = f" of {rows:,}" if rows is not None else ""
    started = time.monotonic()
    due = started  # the first chunk's line, then one at most every PROGRESS_SECONDS
    with TableWriter(target) as writer, TableWriter(quarantine_path) as quarantine:
        for i, ((out, bad), part) in enumerate(scored(model, request, suite)):
            total.merge(part)
            if len(bad):
                quarantine.write(mask(bad))
            if len(out):
                writer.write(out)
            now = time.monotonic()
            if now < due:
                continue
            due = now + progress.PROGRESS_SECONDS
            spent = max(now - started, 1e-9)
            left = (
                f", about {spent / total.rows_in * (rows - total.rows_in):.0f} s left"
                if rows and total.rows_in
                else ""
            )
            log.info(
                "chunk %d: %s%s rows read, %s predicted (%s rows/s%s)",
                i + 1,
                f"{total.rows_in:,}",
                of,
                f"{total.rows_predicted:,}",
                f"{total.rows_in / spent:,.0f}",
                left,
            )
        _judge(total, request)
        output = writer.commit()
        quarantine_file = quarantine.commit() if total.rows_quarantined else None
    if quarantine_file:
        tracking.log_artifact(batch_run_id, quarantine_file, "quarantine")
    tracking.log_metrics(
        batch_run_id,
        {
            "rows_in": total.rows_in,
            "rows_predicted": total.rows_predicted,
            "rows_quarantined": total.rows_quarantined,
        },
    )
    return BatchResult(
        output=output,
        rows_in=total.rows_in,
        rows_predicted=total.rows_predicted,
        rows_quarantined=total.rows_quarantined,
        model_version=model.version,
        quarantine=quarantine_file,
    )


Scoring = Iterator[tuple[tuple[pd.DataFrame, pd.DataFrame], Scored]]


def _here(model: ServingModel, request: PredictRequest, suite: dict[str, Any] | None) -> Scoring:
    """Each chunk of the input scored in this process as it is read."""
    started = time.monotonic()
    log.info("loading %s v%s", model.name, model.version)
    pyfunc = tracking.load_pyfunc(model.uri)
    log.info("loaded %s v%s in %.1f s", model.name, model.version, time.monotonic() - started)
    version = (model.name, model.version, model.run_id)
    chunks = iter_table(request.input, request.chunk_rows, request.encoding)
    for i, chunk in enumerate(chunks):
        yield score_partition(
            chunk, i + 1, pyfunc, model.dataset, suite, request.batch_alpha, version
        )


def _on_cluster(
    model: ServingModel, request: PredictRequest, suite: dict[str, Any] | None
) -> Scoring:
    """The input staged as partitions beside the output, scored on the Dask workers.

    The workers load the model from a copy in the same folder (they need no tracking
    server); the folder goes when the batch ends, however it ends.
    """
    target = Path(request.output).resolve()  # the workers' working folder is not ours
    _remove_abandoned(target)
    scratch = target.parent / f".{target.name}{STAGING}{uuid.uuid4().hex[:8]}"
    scratch.mkdir(parents=True)
    (scratch / OWNER_FILE).write_text(owner(), encoding="utf-8")
    try:
        engine = engine_for(request.execution, scratch)
        # Each chunk as it was read, one partition each: a dataset writer would unify the
        # chunks' column types, and a chunk would no longer be validated as read here.
        source = scratch / "input"
        source.mkdir()
        parts = 0
        for chunk in iter_table(request.input, request.chunk_rows, request.encoding):
            parts += write_part(chunk, source / f"part-{parts:05d}.parquet") > 0
        if not parts:
            raise DataError(f"input file has no rows: {request.input}")
        folder = tracking.download_model(model.uri, scratch / "model")
        version = (model.name, model.version, model.run_id)
        with PartitionWriter(scratch / "out") as out, PartitionWriter(scratch / "bad") as bad:
            summaries = list(
                engine.rewrite(
                    score_partition,
                    source,
                    [out, bad],
                    folder,
                    model.dataset,
                    suite,
                    request.batch_alpha,
                    version,
                    each=range(1, parts + 1),
                    progress="scoring on the cluster",
                )
            )
            scored = iter_partitions(out.commit()) if out.rows else iter([])
            quarantined = iter_partitions(bad.commit()) if bad.rows else iter([])
            for summary in summaries:
                # Output partitions follow the input's; partitions without rows have none.
                frame = next(scored) if summary.rows_predicted else None
                rejects = next(quarantined) if summary.rows_quarantined else None
                yield (_or_empty(frame), _or_empty(rejects)), summary
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        shutdown()


def _remove_abandoned(target: Path) -> None:
    """Delete staging folders beside ``target`` whose process is gone (a killed batch)."""
    for folder in target.parent.glob(f".{glob.escape(target.name)}{STAGING}*"):
        try:
            identity = (folder / OWNER_FILE).read_text(encoding="utf-8").strip()
        except OSError:
            continue  # being created, or not ours
        if owner_alive(identity) is False:
            log.warning("removing %s, left by a batch that was killed", folder.name)
            shutil.rmtree(folder, ignore_errors=True)


def _or_empty(frame: pd.DataFrame | None) -> pd.DataFrame:
    return pd.DataFrame() if frame is None else frame


def _judge(total: Scored, request: PredictRequest) -> None:
    """Refuse a batch that is empty, fails a ``mostly`` check, or is mostly quarantined."""
    if total.rows_in == 0:
        raise DataError(f"input file has no rows: {request.input}")
    assert total.tally is not None
    missed = total.tally.failures()
    if missed:
        raise DataValidationError("input fails a critical expectation: " + "; ".join(missed))
    if total.rows_quarantined / total.rows_in > request.max_quarantine_rate:
        raise DataValidationError(
            f"{total.rows_quarantined} of {total.rows_in} input rows quarantined "
            f"({total.rows_quarantined / total.rows_in:.1%} > limit "
            f"{request.max_quarantine_rate:.1%})"
        )
    if total.rows_predicted == 0:
        raise DataError(f"no rows of {request.input} passed validation: nothing to predict")
    if total.renamed:
        log.warning(
            "input columns %s clash with output columns: written as input_<name>",
            ", ".join(sorted(total.renamed)),
        )
