"""Models for behavioural tests, trained with the same stage functions the flow wires."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from tasks.clean import clean_partition
from tasks.core.config import CleanConfig, DatasetSpec, FeatureConfig, SplitConfig, TrainConfig
from tasks.core.datasets import load_source
from tasks.core.inference import Predictor
from tasks.features import fit_preprocessor, transform_partition
from tasks.load import resolve_schema
from tasks.split import class_labels, split_frame
from tasks.train import encode_target, fit_network
from tests.helpers import make_mixed_frame


def train_predictor(frame: pd.DataFrame, spec: DatasetSpec, cfg: TrainConfig) -> Predictor:
    """Clean, split, fit features and network: the flow's stages without Prefect or MLflow."""
    schema = resolve_schema(frame, spec)
    clean, _ = clean_partition(frame, schema, CleanConfig())
    classify = schema.task != "regression"
    train, val, _ = split_frame(clean, schema.target, classify, SplitConfig(), seed=0)
    classes = class_labels(clean[schema.target]) if classify else None
    pre = fit_preprocessor(train, schema, FeatureConfig())
    x_train = transform_partition(train, pre).to_numpy(np.float32)
    x_val = transform_partition(val, pre).to_numpy(np.float32)
    y_train = encode_target(train[schema.target], classes)
    y_val = encode_target(val[schema.target], classes)
    meta: dict[str, Any] = {"schema": schema.model_dump(mode="json"), "classes": classes}
    if not classify:
        mean, std = float(y_train.mean()), float(y_train.std())
        meta.update(target_mean=mean, target_std=std)
        y_train, y_val = (y_train - mean) / std, (y_val - mean) / std
    net_spec = {
        "architecture": cfg.architecture, "task": schema.task, "n_inputs": x_train.shape[1],
        "n_outputs": len(classes) if classes else 1, "hidden_layers": cfg.hidden_layers,
        "dropout": cfg.dropout, "image_shape": list(schema.image_shape or []) or None,
    }  # fmt: skip
    meta["network"] = net_spec
    net, _, _ = fit_network(x_train, y_train, x_val, y_val, net_spec, cfg, seed=0)
    return Predictor(pre, net, meta)


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
