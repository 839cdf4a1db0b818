"""Stage: feature engineering, a scikit-learn ColumnTransformer fitted on the training split."""

from __future__ import annotations

import logging

import joblib
from prefect import task

from mlpipe.config import FeatureConfig
from mlpipe.data.features import fit_preprocessor
from mlpipe.handoff import Features, RunContext, Splits
from mlpipe.io import tracking
from mlpipe.io.tables import read_parquet

log = logging.getLogger("mlpipe.features")


@task(name="features")
def build_features(splits: Splits, cfg: FeatureConfig, run: RunContext) -> Features:
    """Fit the preprocessor on the training rows only and save it."""
    preprocessor = fit_preprocessor(read_parquet(splits.train), splits.dataset, cfg)
    path = run.path("preprocessor.joblib")
    joblib.dump(preprocessor, path)
    names = [str(n) for n in preprocessor.get_feature_names_out()]
    tracking.log_metrics(run.run_id, {"n_features": len(names)})
    log.info("features: %d columns after encoding", len(names))
    return Features(preprocessor=str(path), names=names)
