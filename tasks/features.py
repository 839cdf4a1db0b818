"""Stage: feature engineering, a scikit-learn ColumnTransformer fitted on the training split."""

from __future__ import annotations

import logging

import joblib
import pandas as pd
from prefect import task

from mlpipe.config import FeatureConfig
from mlpipe.data.features import fit_features
from mlpipe.handoff import Features, RunContext, Splits
from mlpipe.io import tracking
from mlpipe.io.tables import read_parquet, write_parquet
from mlpipe.serving.predictor import transform

log = logging.getLogger("mlpipe.features")


@task(name="features")
def build_features(splits: Splits, cfg: FeatureConfig, run: RunContext) -> Features:
    """Fit the preprocessor on the training rows only; save it and the train/val features."""
    preprocessor, x_train = fit_features(read_parquet(splits.train), splits.dataset, cfg)
    path = run.path("preprocessor.joblib")
    joblib.dump(preprocessor, path)
    names = [str(n) for n in preprocessor.get_feature_names_out()]
    x_val = transform(preprocessor, splits.dataset, read_parquet(splits.val))
    # The trainer reads these instead of transforming the rows again. Columns by position:
    # encoded names can repeat (column "a" value "b_c" and column "a_b" value "c").
    columns = [f"f{i}" for i in range(len(names))]
    train = write_parquet(
        pd.DataFrame(x_train, columns=columns), run.path("features_train.parquet")
    )
    val = write_parquet(pd.DataFrame(x_val, columns=columns), run.path("features_val.parquet"))
    tracking.log_metrics(run.run_id, {"n_features": len(names)})
    log.info("features: %d columns after encoding", len(names))
    return Features(preprocessor=str(path), names=names, train=train, val=val)
