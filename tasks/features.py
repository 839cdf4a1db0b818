"""Stage: feature engineering, a scikit-learn ColumnTransformer fitted on the training split."""

from __future__ import annotations

import logging

import joblib
from prefect import task

from mlpipe.config import FeatureConfig
from mlpipe.data.features import FeatureStats, partition_stats, preprocessor_from
from mlpipe.handoff import Features, RunContext, Splits
from mlpipe.io import tracking
from mlpipe.io.engine import engine_for, starts
from mlpipe.io.tables import PartitionWriter
from mlpipe.learn.train import feature_rows

log = logging.getLogger("mlpipe.features")


@task(name="features")
def build_features(splits: Splits, cfg: FeatureConfig, run: RunContext) -> Features:
    """Fit the preprocessor on the training rows only; save it and the train/val features.

    Fitted from statistics merged over the training partitions; then each partition of the
    training and validation rows is transformed into ``features_train/`` and ``features_val/``,
    with the encoded target the trainer reads beside the features.
    """
    schema = splits.dataset
    median = cfg.numeric_impute == "median"
    engine = engine_for(run.execution, run.run_dir)
    stats = FeatureStats()
    for part in engine.summarise(
        partition_stats, splits.train, schema, median,
        each=starts(splits.train), progress="feature statistics",
    ):  # fmt: skip
        stats = stats.merge(part)
    preprocessor = preprocessor_from(stats, schema, cfg)
    path = run.path("preprocessor.joblib")
    joblib.dump(preprocessor, path)
    names = [str(n) for n in preprocessor.get_feature_names_out()]
    # The trainer reads these instead of transforming the rows again; the training rows'
    # magnitudes were checked in fitting, the validation rows' are checked here.
    written = []
    for rows, name, check in (
        (splits.train, "features_train", False),
        (splits.val, "features_val", True),
    ):
        with PartitionWriter(run.path(name)) as writer:
            for _ in engine.rewrite(
                feature_rows, rows, [writer], preprocessor, schema, splits.classes, check,
                progress=name.replace("_", " "),
            ):  # fmt: skip
                pass
            written.append(writer.commit())
    tracking.log_metrics(run.run_id, {"n_features": len(names)})
    log.info("features: %d columns after encoding", len(names))
    return Features(preprocessor=str(path), names=names, train=written[0], val=written[1])
