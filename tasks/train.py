"""Stage: train the PyTorch network (MLP or small CNN) and a scikit-learn baseline."""

from __future__ import annotations

import copy
import math
import random
import time
from collections.abc import Callable
from typing import Any

import joblib
import numpy as np
import pandas as pd
import torch
from prefect import task
from pydantic import BaseModel, ConfigDict
from torch import nn

from tasks.core import tracking
from tasks.core.config import TrainConfig
from tasks.core.inference import Predictor
from tasks.core.nets import build_network
from tasks.core.run import RunContext, logger, read_parquet
from tasks.core.schema import Schema
from tasks.features import Features
from tasks.split import Splits

EpochCallback = Callable[[dict[str, float]], None]


class TrainedNetwork(BaseModel):
    """A trained predictor saved in the run directory, with its learning history."""

    model_config = ConfigDict(frozen=True)

    path: str
    history: list[dict[str, float]]
    best_epoch: int
    architecture: str
    seconds: float


class TrainedBaseline(BaseModel):
    """A fitted scikit-learn baseline saved in the run directory."""

    model_config = ConfigDict(frozen=True)

    path: str
    kind: str


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch; ask torch for deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def encode_target(y: pd.Series, classes: list[Any] | None) -> np.ndarray:
    """Class labels to indices into ``classes``; regression targets to float32."""
    if classes is None:
        return y.to_numpy(dtype=np.float32)
    index = {c: i for i, c in enumerate(classes)}
    return np.asarray([index[v] for v in y], dtype=np.int64)


def pick_device(choice: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU."""
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(choice)


def fit_network(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    spec: dict[str, Any],
    cfg: TrainConfig,
    seed: int,
    on_epoch: EpochCallback | None = None,
) -> tuple[nn.Module, list[dict[str, float]], int]:
    """Train with Adam and early stopping on validation loss; return the best weights.

    Args:
        x_train: Training features, float32.
        y_train: Class indices (int64) or standardised regression targets (float32).
        x_val: Validation features.
        y_val: Validation targets, encoded like ``y_train``.
        spec: Network spec for :func:`build_network`.
        cfg: Training settings.
        seed: Seed for initialisation and batch order.
        on_epoch: Called with each epoch's metrics (``epoch``, ``train_loss``, ``val_loss``,
            and ``train_accuracy``/``val_accuracy`` for classification).

    Returns:
        ``(network on CPU with the best validation weights, history, best epoch)``.
    """
    seed_everything(seed)
    device = pick_device(cfg.device)
    classify = spec["task"] != "regression"
    net = build_network(spec).to(device)
    loss_fn: nn.Module = nn.CrossEntropyLoss() if classify else nn.MSELoss()
    optimiser = torch.optim.Adam(
        net.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay
    )
    # torch.tensor copies: arrays read from Parquet are read-only views.
    xt, yt = torch.tensor(x_train, device=device), torch.tensor(y_train, device=device)
    xv, yv = torch.tensor(x_val, device=device), torch.tensor(y_val, device=device)
    if not classify:
        yt, yv = yt.unsqueeze(1), yv.unsqueeze(1)
    generator = torch.Generator().manual_seed(seed)
    best_loss, best_epoch, best_state = math.inf, 0, copy.deepcopy(net.state_dict())
    history: list[dict[str, float]] = []
    for epoch in range(1, cfg.max_epochs + 1):
        net.train()
        order = torch.randperm(len(xt), generator=generator).to(device)
        total, correct = 0.0, 0
        for start in range(0, len(order), cfg.batch_size):
            idx = order[start : start + cfg.batch_size]
            optimiser.zero_grad()
            out = net(xt[idx])
            loss = loss_fn(out, yt[idx])
            loss.backward()
            optimiser.step()
            total += loss.item() * len(idx)
            if classify:
                correct += int((out.argmax(1) == yt[idx]).sum())
        net.eval()
        with torch.no_grad():
            val_out = net(xv)
            val_loss = float(loss_fn(val_out, yv))
        row = {"epoch": float(epoch), "train_loss": total / len(xt), "val_loss": val_loss}
        if classify:
            row["train_accuracy"] = correct / len(xt)
            row["val_accuracy"] = float((val_out.argmax(1) == yv).float().mean())
        history.append(row)
        if on_epoch:
            on_epoch(row)
        if val_loss < best_loss - 1e-6:
            best_loss, best_epoch, best_state = val_loss, epoch, copy.deepcopy(net.state_dict())
        elif epoch - best_epoch >= cfg.patience:
            break
    net.load_state_dict(best_state)
    return net.cpu().eval(), history, best_epoch


def fit_baseline(x: np.ndarray, y: np.ndarray, classify: bool, kind: str, seed: int) -> Any:
    """Fit the scikit-learn comparison model (``linear`` or ``hgb``)."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.linear_model import LogisticRegression, Ridge

    model: Any
    if kind == "hgb":
        model = (
            HistGradientBoostingClassifier(random_state=seed)
            if classify
            else HistGradientBoostingRegressor(random_state=seed)
        )
    else:
        model = LogisticRegression(max_iter=5000) if classify else Ridge()
    return model.fit(x, y)


def _progress(run: RunContext, max_epochs: int) -> EpochCallback:
    log = logger("train")

    def report(row: dict[str, float]) -> None:
        epoch = int(row["epoch"])
        tracking.log_metrics(run.run_id, {k: v for k, v in row.items() if k != "epoch"}, step=epoch)
        if epoch == 1 or epoch % 5 == 0:
            extra = f" val_accuracy={row['val_accuracy']:.4f}" if "val_accuracy" in row else ""
            log.info(
                "epoch %d/%d train_loss=%.4f val_loss=%.4f%s",
                epoch,
                max_epochs,
                row["train_loss"],
                row["val_loss"],
                extra,
            )

    return report


@task(name="train-network")
def train_network(
    features: Features, splits: Splits, cfg: TrainConfig, seed: int, run: RunContext
) -> TrainedNetwork:
    """Train the network, log per-epoch metrics (``step=epoch``), save the predictor."""
    schema: Schema = splits.dataset
    y_train_raw = read_parquet(splits.train)[schema.target]
    y_val_raw = read_parquet(splits.val)[schema.target]
    x_train = read_parquet(features.train).to_numpy(np.float32)
    x_val = read_parquet(features.val).to_numpy(np.float32)
    meta: dict[str, Any] = {"schema": schema.model_dump(mode="json"), "classes": splits.classes}
    y_train, y_val = (
        encode_target(y_train_raw, splits.classes),
        encode_target(y_val_raw, splits.classes),
    )
    if schema.task == "regression":
        # Standardise the target with training statistics; the predictor undoes it.
        mean, std = float(y_train.mean()), float(y_train.std()) or 1.0
        meta.update(target_mean=mean, target_std=std)
        y_train, y_val = (y_train - mean) / std, (y_val - mean) / std
    if cfg.architecture == "cnn" and schema.image_shape is None:
        from tasks.core.errors import ConfigError

        raise ConfigError("train.architecture=cnn needs an image dataset (dataset.image)")
    spec = {
        "architecture": cfg.architecture,
        "task": schema.task,
        "n_inputs": x_train.shape[1],
        "n_outputs": len(splits.classes) if splits.classes else 1,
        "hidden_layers": cfg.hidden_layers,
        "dropout": cfg.dropout,
        "image_shape": list(schema.image_shape) if schema.image_shape else None,
    }
    meta["network"] = spec
    logger("train").info(
        "training %s %s on %d rows (max %d epochs, patience %d)",
        cfg.architecture,
        cfg.hidden_layers if cfg.architecture == "mlp" else "",
        len(x_train),
        cfg.max_epochs,
        cfg.patience,
    )
    started = time.perf_counter()
    net, history, best_epoch = fit_network(
        x_train, y_train, x_val, y_val, spec, cfg, seed, _progress(run, cfg.max_epochs)
    )
    seconds = time.perf_counter() - started
    predictor = Predictor(joblib.load(features.preprocessor), net, meta)
    folder = run.path("predictor")
    predictor.save(folder)
    tracking.log_metrics(
        run.run_id,
        {"best_epoch": best_epoch, "epochs_run": len(history), "train_seconds": seconds},
    )
    logger("train").info(
        "trained %d epochs in %.1fs; best validation loss at epoch %d",
        len(history),
        seconds,
        best_epoch,
    )
    return TrainedNetwork(
        path=str(folder),
        history=history,
        best_epoch=best_epoch,
        architecture=cfg.architecture,
        seconds=seconds,
    )


@task(name="train-baseline")
def train_baseline(
    features: Features, splits: Splits, cfg: TrainConfig, seed: int, run: RunContext
) -> TrainedBaseline | None:
    """Fit the scikit-learn baseline on the same features (``None`` when disabled)."""
    if cfg.baseline == "none":
        return None
    schema = splits.dataset
    y = read_parquet(splits.train)[schema.target]
    x = read_parquet(features.train).to_numpy(np.float32)
    y_enc = encode_target(y, splits.classes)
    model = fit_baseline(x, y_enc, schema.task != "regression", cfg.baseline, seed)
    path = run.path("baseline.joblib")
    joblib.dump(model, path)
    logger("train").info("baseline %s fitted", cfg.baseline)
    return TrainedBaseline(path=str(path), kind=cfg.baseline)
