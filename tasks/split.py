"""Stage: the train/validation/test split by a salted hash of each row."""

from __future__ import annotations

import json
import logging

from prefect import task

from mlpipe.config import SplitConfig
from mlpipe.data.split import class_labels, split_frame, split_spec
from mlpipe.handoff import CleanedData, RunContext, Splits
from mlpipe.io import tracking
from mlpipe.io.tables import read_parquet, write_parquet
from mlpipe.registry import SPLIT_TAG

log = logging.getLogger("mlpipe.split")


@task(name="split")
def split_data(data: CleanedData, cfg: SplitConfig, run: RunContext) -> Splits:
    """Split ``clean.parquet`` into ``train``/``val``/``test`` Parquet files."""
    frame = read_parquet(data.path)
    schema = data.dataset
    classify = schema.task != "regression"
    spec = split_spec(cfg, schema)
    train, val, test = split_frame(frame, spec, schema.target, classify)
    tracking.log_metrics(
        run.run_id, {"rows_train": len(train), "rows_val": len(val), "rows_test": len(test)}
    )
    tracking.set_tags(run.run_id, {SPLIT_TAG: json.dumps(spec.model_dump(mode="json"))})
    log.info("split: %d train, %d validation, %d test", len(train), len(val), len(test))
    return Splits(
        train=write_parquet(train, run.path("train.parquet")),
        val=write_parquet(val, run.path("val.parquet")),
        test=write_parquet(test, run.path("test.parquet")),
        dataset=schema,
        spec=spec,
        classes=class_labels(frame[schema.target]) if classify else None,
    )
