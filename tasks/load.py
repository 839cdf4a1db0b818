"""Stage: load the source into the run directory, resolve the schema, run the pre-flight."""

from __future__ import annotations

import logging

from prefect import task

from mlpipe import preflight
from mlpipe.config import Config
from mlpipe.data.datasets import is_builtin, load_source
from mlpipe.data.roles import resolve_schema
from mlpipe.handoff import LoadedData, RunContext
from mlpipe.io import tracking
from mlpipe.io.tables import frame_digest, write_parquet
from mlpipe.registry import SCHEMA_ARTIFACT
from mlpipe.serving.schema import Schema

log = logging.getLogger("mlpipe.load")


@task(name="load")
def load_data(config: Config, run: RunContext, schema: Schema | None = None) -> LoadedData:
    """Load the source, write ``raw.parquet``, log the dataset.

    Without a ``schema`` resolved by the caller's pre-flight, resolve it and run the
    pre-flight here (scheduled and triggered runs).
    """
    spec = config.dataset
    frame = load_source(spec)
    if schema is None:
        schema = resolve_schema(frame, spec)
        preflight.check(config, schema, frame)
    path = write_parquet(frame, run.path("raw.parquet"))
    digest = frame_digest(frame)
    source = spec.source if is_builtin(spec.source) else str(spec.source)
    tracking.log_dataset(
        run.run_id,
        frame,
        source=source,
        name=schema.name,
        target=schema.target,
        context="training",
        digest=digest,
        rows=len(frame),
    )
    tracking.log_dict(run.run_id, schema.model_dump(mode="json"), SCHEMA_ARTIFACT)
    tags = {"mlpipe.dataset": schema.name, "mlpipe.task": schema.task}
    if schema.leakage:
        tags["mlpipe.leakage"] = ", ".join(schema.leakage)
    if schema.identifiers:
        tags["mlpipe.identifiers"] = ", ".join(schema.identifiers)
    tracking.set_tags(run.run_id, tags)
    log.info(
        "loaded %s: %d rows, %d numeric + %d categorical features, target '%s' (%s)",
        schema.name,
        len(frame),
        len(schema.numeric),
        len(schema.categorical),
        schema.target,
        schema.task,
    )
    return LoadedData(path=path, dataset=schema, source=source, digest=digest, rows=len(frame))
