"""Test accuracy of the digits MLP (256-128) across seeds, for a few feature/regularisation choices.

Runs the pure stage functions (no Prefect, no MLflow), so it measures the model, not the plumbing.
Usage: .venv/bin/python bench/digits_mlp_seeds.py [--seeds 5]
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
import torch

from tasks.clean import clean_partition
from tasks.core.config import CleanConfig, DatasetSpec, FeatureConfig, SplitConfig, TrainConfig
from tasks.features import fit_preprocessor, transform_partition
from tasks.load import read_dataset
from tasks.split import class_labels, split_frame
from tasks.train import encode_target, fit_network

VARIANTS = {
    "standard scaling, no dropout": ("standard", 0.0),
    "standard scaling, dropout 0.2": ("standard", 0.2),
    "min-max scaling, no dropout": ("minmax", 0.0),
    "min-max scaling, dropout 0.2 (default)": ("minmax", 0.2),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    frame, schema = read_dataset(DatasetSpec(source="digits"))
    clean, _ = clean_partition(frame, schema, CleanConfig())
    classes = class_labels(clean[schema.target])
    print(f"| variant | test accuracy, seeds 0..{args.seeds - 1} | mean | min |")
    print("|---|---|---|---|")
    for name, (scaler, dropout) in VARIANTS.items():
        accs = []
        for seed in range(args.seeds):
            parts = split_frame(clean, schema.target, True, SplitConfig(), seed)
            pre = fit_preprocessor(parts[0], schema, FeatureConfig(scaler=scaler))
            x = [transform_partition(p, pre).to_numpy(np.float32) for p in parts]
            y = [encode_target(p[schema.target], classes) for p in parts]
            cfg = TrainConfig(dropout=dropout)
            spec = {
                "architecture": "mlp", "task": "multiclass", "n_inputs": x[0].shape[1],
                "n_outputs": len(classes), "hidden_layers": cfg.hidden_layers,
                "dropout": dropout, "image_shape": None,
            }  # fmt: skip
            net, _, _ = fit_network(x[0], y[0], x[1], y[1], spec, cfg, seed)
            with torch.no_grad():
                pred = net(torch.tensor(x[2])).argmax(1).numpy()
            accs.append(float((pred == y[2]).mean()))
        shown = ", ".join(f"{a:.4f}" for a in accs)
        print(f"| {name} | {shown} | {np.mean(accs):.4f} | {min(accs):.4f} |", flush=True)


if __name__ == "__main__":
    main()
