"""Test accuracy of the digits MLP (256-128) across seeds, for a few feature/regularisation choices.

Calls the training entry point (``mlpipe.learn.train.fit``) without Prefect or MLflow, so it
measures the model, not the plumbing. The split is the salted row hash (it does not move with
the seed); the seed changes initialisation and batch order.
Usage: .venv/bin/python bench/digits_mlp_seeds.py [--seeds 5]
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np

from mlpipe.config import CleanConfig, DatasetSpec, FeatureConfig, SplitConfig, TrainConfig
from mlpipe.data.clean import clean_partition
from mlpipe.data.datasets import load_source
from mlpipe.data.roles import resolve_schema
from mlpipe.data.split import class_labels, split_frame, split_spec
from mlpipe.learn.metrics import score
from mlpipe.learn.train import encode_target, fit

VARIANTS = {
    "standard scaling, no dropout": ("standard", 0.0),
    "standard scaling, dropout 0.2": ("standard", 0.2),
    "min-max scaling, no dropout": ("minmax", 0.0),
    "min-max scaling, dropout 0.2 (default)": ("minmax", 0.2),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--max-epochs", type=int, default=100)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    spec = DatasetSpec(source="digits")
    frame = load_source(spec)
    schema = resolve_schema(frame, spec)
    clean, _ = clean_partition(frame, schema, CleanConfig())
    classes = class_labels(clean[schema.target])
    train, val, test = split_frame(clean, split_spec(SplitConfig(), schema), schema.target, True)
    y_test = encode_target(test[schema.target], classes)
    print(f"| variant | test accuracy, seeds 0..{args.seeds - 1} | mean | min |")
    print("|---|---|---|---|")
    for name, (scaler, dropout) in VARIANTS.items():
        accs = []
        for seed in range(args.seeds):
            cfg = TrainConfig(dropout=dropout, max_epochs=args.max_epochs)
            fitted = fit(train, val, schema, classes, cfg, FeatureConfig(scaler=scaler), seed)
            proba = fitted.predictor.raw_outputs(fitted.predictor.features(test))
            accs.append(score("accuracy", y_test, proba, len(classes)) or 0.0)
        shown = ", ".join(f"{a:.4f}" for a in accs)
        print(f"| {name} | {shown} | {np.mean(accs):.4f} | {min(accs):.4f} |", flush=True)


if __name__ == "__main__":
    main()
