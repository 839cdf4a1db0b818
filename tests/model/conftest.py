"""Models for behavioural tests, trained through the training entry point (``fit``)."""

from __future__ import annotations

import pandas as pd
import pytest

from mlpipe.config import CleanConfig, DatasetSpec, FeatureConfig, SplitConfig, TrainConfig
from mlpipe.data.clean import clean_partition
from mlpipe.data.datasets import load_source
from mlpipe.data.roles import resolve_schema
from mlpipe.data.split import class_labels, split_frame, split_spec
from mlpipe.learn.train import fit
from mlpipe.serving.predictor import Predictor
from tests.helpers import make_mixed_frame


def train_predictor(frame: pd.DataFrame, spec: DatasetSpec, cfg: TrainConfig) -> Predictor:
    """Resolve, clean and split as the flow does, then train through ``fit``."""
    schema = resolve_schema(frame, spec)
    clean, _ = clean_partition(frame, schema, CleanConfig())
    classify = schema.task != "regression"
    train, val, _ = split_frame(clean, split_spec(SplitConfig(), schema), schema.target, classify)
    classes = class_labels(clean[schema.target]) if classify else None
    return fit(train, val, schema, classes, cfg, FeatureConfig(), seed=0).predictor


@pytest.fixture(scope="session")
def penguins_model() -> Predictor:
    spec = DatasetSpec(source="penguins")
    return train_predictor(load_source(spec), spec, TrainConfig(max_epochs=60))


@pytest.fixture(scope="session")
def digits_model() -> Predictor:
    spec = DatasetSpec(source="digits")
    return train_predictor(load_source(spec), spec, TrainConfig(max_epochs=40))


@pytest.fixture(scope="session")
def price_model() -> Predictor:
    frame = make_mixed_frame(n=1500, regression=True)
    spec = DatasetSpec(source="prices.csv", target="price")
    return train_predictor(frame, spec, TrainConfig(max_epochs=80))
