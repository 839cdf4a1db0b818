"""Stage: feature engineering, a scikit-learn ColumnTransformer fitted on the training split."""

from __future__ import annotations

import logging

import joblib
import pandas as pd
from prefect import task

from mlpipe.config import FeatureConfig
from mlpipe.data.features import FeatureStats, check_magnitudes, preprocessor_from
from mlpipe.handoff import Features, RunContext, Splits
from mlpipe.io import tracking
from mlpipe.io.tables import PartitionWriter, iter_partitions
from mlpipe.learn.train import TARGET_COLUMN, encode_target
from mlpipe.serving.predictor import transform

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
    stats = FeatureStats()
    for part in iter_partitions(splits.train, progress="feature statistics"):
        stats = stats.merge(FeatureStats.of(part, schema, median))
    preprocessor = preprocessor_from(stats, schema, cfg)
    path = run.path("preprocessor.joblib")
    joblib.dump(preprocessor, path)
    names = [str(n) for n in preprocessor.get_feature_names_out()]
    # The trainer reads these instead of transforming the rows again. Columns by position:
    # encoded names can repeat (column "a" value "b_c" and column "a_b" value "c").
    columns = [f"f{i}" for i in range(len(names))]
    written = []
    for rows, name in ((splits.train, "features_train"), (splits.val, "features_val")):
        with PartitionWriter(run.path(name)) as writer:
            for part in iter_partitions(rows, progress=name.replace("_", " ")):
                if name == "features_val":
                    check_magnitudes(part, schema)  # the training rows' were checked in fitting
                out = pd.DataFrame(transform(preprocessor, schema, part), columns=columns)
                out[TARGET_COLUMN] = encode_target(part[schema.target], splits.classes)
                writer.write(out)
            written.append(writer.commit())
    tracking.log_metrics(run.run_id, {"n_features": len(names)})
    log.info("features: %d columns after encoding", len(names))
    return Features(preprocessor=str(path), names=names, train=written[0], val=written[1])
