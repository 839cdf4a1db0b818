"""Distributed training: DistributedDataParallel with 2 ranks against 1 process, one run.

Synthetic features already encoded (``--rows`` rows of ``--columns`` float32 columns and a
3-class target, written as Parquet partitions the way the features stage writes them) are
trained for ``--epochs`` epochs without early stopping, first by one process
(:func:`mlpipe.learn.train.fit_network`), then by 2 ranks in local processes
(:func:`mlpipe.learn.distributed.fit_network_ranks`, gloo). Both use torch on one thread
per process and the same batches (the default ``auto`` batch size, no dropout), so they
train the same network: the script prints the largest difference of the epochs' losses.

Samples/s is rows x epochs over the wall time of the whole call: the ranks' start (two fresh
interpreters importing torch, the process group) is included. Each step of 2 ranks pays one
gloo all-reduce of the gradients, so 2 ranks only win where a step computes enough
(``--batch-size``, ``--hidden``) to outweigh it.

Usage:
    .venv/bin/python bench/ddp.py --rows 1000000 --epochs 2
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before numpy and torch load

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO)]


def _write(folder: Path, rows: int, columns: int, partition_rows: int, seed: int) -> Path:
    import numpy as np
    import pandas as pd

    from mlpipe.io.tables import PartitionWriter
    from mlpipe.learn.train import TARGET_COLUMN

    rng = np.random.default_rng(seed)
    weights = rng.normal(size=(columns, 3))
    with PartitionWriter(folder) as writer:
        for start in range(0, rows, partition_rows):
            n = min(partition_rows, rows - start)
            x = rng.normal(size=(n, columns)).astype(np.float32)
            out = pd.DataFrame(x, columns=[f"f{i}" for i in range(columns)])
            out[TARGET_COLUMN] = (x @ weights + rng.gumbel(size=(n, 3))).argmax(1)
            writer.write(out)
        return Path(writer.commit())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--columns", type=int, default=40)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--partition-rows", type=int, default=250_000)
    parser.add_argument("--batch-size", default="auto", help="train.batch_size (default auto)")
    parser.add_argument("--hidden", default="256,128", help="train.hidden_layers (default 256,128)")
    args = parser.parse_args()

    import torch

    from mlpipe.config import TrainConfig
    from mlpipe.io.engine import LOCAL
    from mlpipe.learn.distributed import fit_network_ranks
    from mlpipe.learn.train import Rows, batch_size, fit_network

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="mlpipe-bench-ddp-") as tmp:
        folder = Path(tmp)
        width, step = args.columns, args.partition_rows
        train = Rows.on_disk(str(_write(folder / "train", args.rows, width, step, 0)))
        val = Rows.on_disk(str(_write(folder / "val", args.rows // 10, width, step, 1)))
        cfg = TrainConfig(
            max_epochs=args.epochs,
            patience=args.epochs,
            dropout=0.0,
            threads=1,
            hidden_layers=[int(w) for w in args.hidden.split(",")],
            batch_size=args.batch_size if args.batch_size == "auto" else int(args.batch_size),
        )
        spec = {
            "architecture": "mlp", "task": "multiclass", "n_inputs": args.columns,
            "n_outputs": 3, "hidden_layers": list(cfg.hidden_layers), "dropout": 0.0,
            "image_shape": None,
        }  # fmt: skip
        print(
            f"{args.rows:,} training rows x {args.columns} features, {len(train)} partitions, "
            f"batches of {batch_size(cfg, train.rows)}, {args.epochs} epochs, MLP "
            f"{cfg.hidden_layers}, torch threads 1 per process"
        )
        seconds, histories = {}, {}
        for ranks in (1, 2):
            started = time.perf_counter()
            if ranks == 1:
                _, history, _ = fit_network(train, val, spec, cfg, 0)
            else:
                _, history, _ = fit_network_ranks(LOCAL, ranks, train, val, spec, cfg, 0)
            seconds[ranks] = time.perf_counter() - started
            histories[ranks] = history
            rate = train.rows * len(history) / seconds[ranks]
            print(f"{ranks} rank(s): {seconds[ranks]:7.1f} s  {rate:12,.0f} samples/s")
        print(f"speed-up, 2 ranks over 1: {seconds[1] / seconds[2]:.2f}x")
        worst = max(
            abs(a[k] - b[k])
            for a, b in zip(histories[1], histories[2], strict=True)
            for k in ("train_loss", "val_loss")
        )
        print(f"largest difference of an epoch's loss between the two: {worst:.2e}")


if __name__ == "__main__":
    main()
