"""Stage: the train/validation/test split by a salted hash of each row."""

from __future__ import annotations

import json
import logging

from prefect import task

from mlpipe.config import SplitConfig
from mlpipe.data.split import SplitTally, split_rows, split_spec
from mlpipe.handoff import CleanedData, RunContext, Splits
from mlpipe.io import tracking
from mlpipe.io.engine import engine_for
from mlpipe.io.tables import PartitionWriter, partition_files
from mlpipe.registry import SPLIT_TAG

log = logging.getLogger("mlpipe.split")
MAX_TRAIN_PARTITIONS = 256


@task(name="split")
def split_data(data: CleanedData, cfg: SplitConfig, run: RunContext) -> Splits:
    """Split the cleaned rows, partition by partition, into ``train/``, ``val/``, ``test/``.

    Training rows are scattered over as many partitions as the cleaned data has, by their
    hash, so the trainer's partitions are uniform samples whatever the source's order.
    """
    schema = data.dataset
    classify = schema.task != "regression"
    spec = split_spec(cfg, schema)
    tally = SplitTally()
    # As many training partitions as cleaned ones (each a uniform sample of the rows), but
    # few enough files open at once for any system's limit.
    n = min(len(partition_files(data.path)), MAX_TRAIN_PARTITIONS)
    engine = engine_for(run.execution, run.run_dir)
    with (
        engine.bucket_writer(run.path("train"), n) as train_rows,
        PartitionWriter(run.path("val")) as val_rows,
        PartitionWriter(run.path("test")) as test_rows,
    ):
        for part in engine.rewrite(
            split_rows, data.path, [train_rows, val_rows, test_rows],
            spec, n, schema.target, classify, progress="split",
        ):  # fmt: skip
            tally.merge(part)
        tally.check(spec)
        train, val, test = train_rows.commit(), val_rows.commit(), test_rows.commit()
    rows = tally.rows
    tracking.log_metrics(
        run.run_id,
        {"rows_train": rows["train"], "rows_val": rows["validation"], "rows_test": rows["test"]},
    )
    tracking.set_tags(run.run_id, {SPLIT_TAG: json.dumps(spec.model_dump(mode="json"))})
    log.info(
        "split: %d train, %d validation, %d test", rows["train"], rows["validation"], rows["test"]
    )
    return Splits(
        train=train, val=val, test=test, dataset=schema, spec=spec, classes=tally.classes()
    )
