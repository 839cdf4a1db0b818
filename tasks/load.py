"""Stage: copy the source into the run directory as partitions, resolve the schema, pre-flight."""

from __future__ import annotations

import datetime as dt
import logging
import os

from prefect import task

from mlpipe import preflight
from mlpipe.config import Config
from mlpipe.data.ingest import Extra
from mlpipe.handoff import LoadedData, RunContext
from mlpipe.io import tracking
from mlpipe.io.tables import iter_partitions
from mlpipe.monitoring import batch_store, window
from mlpipe.registry import SCHEMA_ARTIFACT

log = logging.getLogger("mlpipe.load")


@task(name="load")
def load_data(
    config: Config, run: RunContext, staged: LoadedData | None = None, window: bool = False
) -> LoadedData:
    """Bring the data into ``raw/`` of the run directory as partitions, log the dataset.

    ``staged``: data the caller's pre-flight already copied and resolved (the CLI), adopted by
    a rename; without it, the source is read, resolved and checked here (scheduled and
    triggered runs). ``window``: read the accepted monitoring batches ``schedule.window``
    selects after the source (or instead of it).
    """
    spec = config.dataset
    raw = run.path("raw")
    if staged is None:
        extra = _window(config, run) if window else Extra()
        ingested, schema = preflight.prepare(config, raw, extra)
        data = LoadedData.of(spec, ingested.path, schema, ingested.digest, ingested.rows)
    else:
        os.replace(staged.path, raw)
        data = staged.model_copy(update={"path": str(raw)})
    schema = data.dataset
    tracking.log_dataset(
        run.run_id,
        next(iter_partitions(data.path)),
        source=data.source,
        name=schema.name,
        target=schema.target,
        context="training",
        digest=data.digest,
        rows=data.rows,
        query=data.query,
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
        data.rows,
        len(schema.numeric),
        len(schema.categorical),
        schema.target,
        schema.task,
    )
    return data


def _window(config: Config, run: RunContext) -> Extra:
    """The accepted batches the window selects, recorded on the run."""
    cfg = config.schedule.window
    store = batch_store(config)
    files = window(store, cfg, dt.datetime.now(dt.UTC).date())
    tracking.set_tags(
        run.run_id,
        {"mlpipe.window.reference": str(cfg.reference).lower(),
         "mlpipe.window.batches": str(len(files))},
    )  # fmt: skip
    tracking.log_dict(
        run.run_id, {"store": str(store), "batches": [str(f) for f in files]}, "data/window.json"
    )
    what = "the reference data" if cfg.reference else "no reference data"
    log.info("window: %s + %d accepted batch(es) from %s", what, len(files), store)
    return Extra(files=tuple(files), reference=cfg.reference)
