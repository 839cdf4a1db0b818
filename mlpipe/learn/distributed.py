"""Training across processes: torch DistributedDataParallel with ``train.workers`` ranks.

The ranks are a gang of the run's engine (:meth:`mlpipe.io.engine.Engine.gang`): local
processes, or one rank on each of as many Dask workers. Each rank runs the one training loop,
:func:`mlpipe.learn.train.fit_network`, on its share of every batch (gloo on CPU, nccl on
GPUs). Rank 0 appends each epoch's metrics to a file the driver follows, so per-epoch logging
and MLflow metrics appear while training runs, as with one process, and returns the best
weights; the driver builds the same single network the predictor serves.
"""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mlpipe.config import TrainConfig
from mlpipe.io.engine import Engine
from mlpipe.learn.train import EpochCallback, Rows, fit_network, pick_device
from mlpipe.serving.nets import build_network

# A collective (a batch's gradients, an epoch's sums) waits this long for a silent peer.
RANK_TIMEOUT_SECONDS = 300


def fit_network_ranks(
    engine: Engine,
    world: int,
    train: Rows,
    val: Rows,
    spec: dict[str, Any],
    cfg: TrainConfig,
    seed: int,
    on_epoch: EpochCallback | None = None,
    standardise: tuple[float, float] | None = None,
    folder: str | Path | None = None,
) -> tuple[nn.Module, list[dict[str, float]], int]:
    """:func:`fit_network` in ``world`` ranks of ``engine``; the same result.

    Args:
        engine: Where the ranks run (local processes, or Dask workers).
        world: Ranks.
        train: Training rows (on disk: every rank reads them).
        val: Validation rows.
        spec: Network spec.
        cfg: Training settings.
        seed: Seed of initialisation and batch order (the same on every rank).
        on_epoch: Called here with each epoch's metrics while the ranks train.
        standardise: Regression target ``(mean, std)``.
        folder: Where rank 0 writes the epochs' metrics; every rank must see it (the run
            directory). A temporary folder when ``None`` (local processes only).

    Returns:
        ``(network with the best validation weights, history, best epoch)``.

    Raises:
        TrainingError: Training diverged (on every rank).
        EngineError: A rank died or its worker left, or the cluster is too small.
    """
    place = (
        contextlib.nullcontext(folder)
        if folder
        else tempfile.TemporaryDirectory(prefix="mlpipe-ranks-")
    )
    with place as where:
        epochs = Path(where) / "epochs.jsonl"
        epochs.parent.mkdir(parents=True, exist_ok=True)
        epochs.unlink(missing_ok=True)
        follow = _EpochFollower(epochs, on_epoch)
        try:
            results = engine.gang(
                _rank,
                world,
                str(epochs),
                train,
                val,
                spec,
                cfg,
                seed,
                standardise,
                poll=follow.poll,
            )
            follow.poll()
        finally:
            epochs.unlink(missing_ok=True)
    first = results[0]
    assert first is not None  # rank 0 returns what it trained
    weights, history, best_epoch = first
    net = build_network(spec)
    net.load_state_dict(torch.load(io.BytesIO(weights), weights_only=True))
    return net.eval(), history, best_epoch


def _rank(
    rank: int,
    world: int,
    rendezvous: str,
    epochs: str,
    train: Rows,
    val: Rows,
    spec: dict[str, Any],
    cfg: TrainConfig,
    seed: int,
    standardise: tuple[float, float] | None,
) -> tuple[bytes, list[dict[str, float]], int] | None:
    """One rank: join the process group, train, leave; rank 0 returns what it trained."""
    import torch.distributed as dist

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    backend = "nccl" if pick_device(cfg.device).type == "cuda" else "gloo"
    dist.init_process_group(
        backend,
        init_method=rendezvous,
        rank=rank,
        world_size=world,
        timeout=timedelta(seconds=RANK_TIMEOUT_SECONDS),
    )
    try:
        net, history, best_epoch = fit_network(
            train,
            val,
            spec,
            cfg,
            seed,
            _append_to(epochs) if rank == 0 else None,
            standardise,
            rank=rank,
            world=world,
        )
    finally:
        dist.destroy_process_group()
    if rank != 0:
        return None
    # As bytes: a pickled tensor would be shared through a file descriptor of this process.
    weights = io.BytesIO()
    torch.save(net.state_dict(), weights)
    return weights.getvalue(), history, best_epoch


def _append_to(path: str) -> EpochCallback:
    def append(row: dict[str, float]) -> None:
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps(row) + "\n")

    return append


class _EpochFollower:
    """Calls ``on_epoch`` for each complete line rank 0 has appended since the last poll."""

    def __init__(self, path: Path, on_epoch: EpochCallback | None) -> None:
        self.path, self.on_epoch, self.offset = path, on_epoch, 0

    def poll(self) -> None:
        if self.on_epoch is None or not self.path.exists():
            return
        with self.path.open("rb") as lines:
            lines.seek(self.offset)
            for line in lines:
                if not line.endswith(b"\n"):  # rank 0 is still writing it
                    break
                self.offset += len(line)
                self.on_epoch(json.loads(line))
