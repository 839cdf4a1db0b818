"""Trainer throughput: `mlpipe.learn.train.fit_network` against a bare torch loop.

Both train the same network on the same float32 tensors with the same seed, batch size and
thread count, one after the other, alternating ``--repeat`` times; the script prints rows per
second of each and the ratio (mlpipe / bare; 1.0 is parity), and checks that both reached the
same training loss. The bare loop is what one would write by hand: shuffled index batches,
Adam, the epoch loss and the validation loss early stopping needs, nothing else.

Usage: .venv/bin/python bench/trainer_speed.py [--rows 200000] [--batch 256] [--threads 1]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch import nn

from mlpipe.config import TrainConfig
from mlpipe.learn.train import Rows, fit_network
from mlpipe.serving.nets import build_network


def bare_epoch(net, optimiser, loss_fn, xt, yt, batch, generator):
    """One hand-written epoch: shuffled index batches, Adam steps; the mean training loss."""
    net.train()
    total = torch.zeros((), dtype=torch.float64)
    order = torch.randperm(len(xt), generator=generator)
    for start in range(0, len(order), batch):
        idx = order[start : start + batch]
        optimiser.zero_grad()
        loss = loss_fn(net(xt[idx]), yt[idx])
        loss.backward()
        optimiser.step()
        total += loss.detach().double() * len(idx)
    return float(total) / len(xt)


def bare_loop(x, y, x_val, y_val, spec, cfg, seed):
    """One epoch of a hand-written loop plus the validation loss early stopping needs."""
    torch.manual_seed(seed)
    net = build_network(spec)
    optimiser = torch.optim.Adam(net.parameters(), lr=cfg.learning_rate)
    loss_fn = nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(seed)
    loss = bare_epoch(net, optimiser, loss_fn, torch.from_numpy(x), torch.from_numpy(y),
                      cfg.batch_size, generator)  # fmt: skip
    net.eval()
    with torch.no_grad():
        float(loss_fn(net(torch.from_numpy(x_val)), torch.from_numpy(y_val)))
    return loss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--features", type=int, default=90)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.rows, args.features)).astype(np.float32)
    y = (x[:, :3].argmax(axis=1)).astype(np.int64)
    x_val, y_val = x[: args.rows // 10], y[: args.rows // 10]
    cfg = TrainConfig(batch_size=args.batch, max_epochs=1, patience=1, threads=args.threads,
                      device="cpu")  # fmt: skip
    spec = {"architecture": "mlp", "task": "multiclass", "n_inputs": args.features,
            "n_outputs": 3, "hidden_layers": cfg.hidden_layers, "dropout": cfg.dropout,
            "image_shape": None}  # fmt: skip
    times: dict[str, list[float]] = {"bare torch loop": [], "mlpipe fit_network": []}
    losses: dict[str, float] = {}
    for _ in range(args.repeat):
        started = time.perf_counter()
        losses["bare torch loop"] = bare_loop(x, y, x_val, y_val, spec, cfg, 0)
        times["bare torch loop"].append(time.perf_counter() - started)
        started = time.perf_counter()
        _, history, _ = fit_network(Rows.of(x, y), Rows.of(x_val, y_val), spec, cfg, 0)
        times["mlpipe fit_network"].append(time.perf_counter() - started)
        losses["mlpipe fit_network"] = history[0]["train_loss"]
    print(f"rows={args.rows:,} features={args.features} batch={args.batch} "
          f"threads={args.threads} repeats={args.repeat} (best of each)")  # fmt: skip
    best = {k: min(v) for k, v in times.items()}
    reference = best["bare torch loop"]
    for name, seconds in best.items():
        print(f"{name:<20} {seconds:7.2f} s  {args.rows / seconds:>10,.0f} rows/s  "
              f"throughput {reference / seconds:.2f}x  train loss {losses[name]:.6f}")  # fmt: skip
    same = np.isclose(*losses.values(), rtol=1e-5)
    print("same training loss: " + ("yes" if same else "NO"))


if __name__ == "__main__":
    main()
