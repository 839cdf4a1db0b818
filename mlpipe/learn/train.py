"""Training: the one ``fit`` entry point used by the flow, the model tests and the benchmarks.

``fit`` takes cleaned train and validation rows and returns the served :class:`Predictor`
(fitted preprocessing + network) together with the two other candidates every run is judged
against: the scikit-learn baseline and a trivial predictor (class priors or the mean).
"""

from __future__ import annotations

import copy
import math
import os
import random
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from mlpipe.config import FeatureConfig, TrainConfig
from mlpipe.data.features import check_magnitudes, fit_features
from mlpipe.data.sampling import RowSample
from mlpipe.errors import ConfigError, TrainingError
from mlpipe.io.engine import LOCAL, Engine
from mlpipe.io.progress import Progress
from mlpipe.learn.metrics import Tally
from mlpipe.serving.nets import build_network
from mlpipe.serving.predictor import Predictor, transform
from mlpipe.serving.schema import Schema

EpochCallback = Callable[[dict[str, float]], None]


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch; ask torch for deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if "torch._inductor.config" in sys.modules:
        torch.use_deterministic_algorithms(True, warn_only=True)
    else:
        # The public switch imports torch's compiler (1-2 s) only to set the compiler's own
        # flag; mlpipe trains eagerly, so the kernels' switch alone is the same setting.
        torch._C._set_deterministic_algorithms(True, warn_only=True)


def feature_rows(
    part: pd.DataFrame,
    preprocessor: Any,
    schema: Schema,
    classes: list[Any] | None,
    check: bool,
) -> tuple[tuple[pd.DataFrame], None]:
    """One partition of split rows as the trainer reads them: features ``f0..``, the target.

    Columns by position: encoded names can repeat (column "a" value "b_c" and column "a_b"
    value "c"). ``check``: first refuse magnitudes the preprocessing was not fitted to check.
    """
    if check:
        check_magnitudes(part, schema)
    x = transform(preprocessor, schema, part)
    out = pd.DataFrame(x, columns=[f"f{i}" for i in range(x.shape[1])])
    out[TARGET_COLUMN] = encode_target(part[schema.target], classes)
    return (out,), None


def encode_target(y: pd.Series, classes: list[Any] | None) -> np.ndarray:
    """Class labels to indices into ``classes``; regression targets to float32."""
    if classes is None:
        return y.to_numpy(dtype=np.float32)
    codes = pd.Index(classes).get_indexer(y)
    if (codes < 0).any():
        unknown = y[codes < 0].unique()[:3]
        raise ValueError(f"labels not among the classes: {', '.join(map(repr, unknown))}")
    return codes.astype(np.int64)


def batch_size(cfg: TrainConfig, rows: int) -> int:
    """The configured batch size, or for ``auto`` one that grows with the training rows."""
    if cfg.batch_size != "auto":
        return cfg.batch_size
    return int(min(1024, max(64, 2 ** math.floor(math.log2(max(rows, 1) / 2000)))))


def pick_device(choice: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is a config error."""
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device=cuda, but torch sees no CUDA device here: use auto or cpu")
    return torch.device(choice)


def network_spec(
    schema: Schema, n_inputs: int, classes: list[Any] | None, cfg: TrainConfig
) -> dict[str, Any]:
    """The JSON spec the network is built from (stored with the model)."""
    if cfg.architecture == "cnn" and schema.image_shape is None:
        raise ConfigError("train.architecture=cnn needs an image dataset (dataset.image)")
    return {
        "architecture": cfg.architecture,
        "task": schema.task,
        "n_inputs": n_inputs,
        "n_outputs": len(classes) if classes else 1,
        "hidden_layers": list(cfg.hidden_layers),
        "dropout": cfg.dropout,
        "image_shape": list(schema.image_shape) if schema.image_shape else None,
    }


# Column of the encoded target in the feature partitions the features stage writes.
TARGET_COLUMN = "__target__"
# The baseline trains on at most this many training rows (recorded as ``baseline_rows``).
BASELINE_MAX_ROWS = 1_000_000


class Rows:
    """Feature matrices and encoded targets, one partition at a time, as the trainer reads them.

    In memory (:meth:`of`: one partition) or on disk (:meth:`on_disk`: the Parquet partitions
    of the features stage, feature columns plus :data:`TARGET_COLUMN`). Only one partition is
    held at a time when on disk.
    """

    def __init__(
        self,
        arrays: list[tuple[np.ndarray, np.ndarray]] | None = None,
        paths: list[str] | None = None,
        sizes: list[int] | None = None,
    ):
        self._arrays = arrays
        self._paths = paths
        self.sizes = sizes or [len(y) for _, y in arrays or []]

    @classmethod
    def of(cls, x: np.ndarray, y: np.ndarray) -> Rows:
        """One in-memory partition."""
        return cls(arrays=[(np.asarray(x, dtype=np.float32), np.asarray(y))])

    @classmethod
    def on_disk(cls, folder: str) -> Rows:
        """The partitions of a folder written by the features stage."""
        import pyarrow.parquet as pq

        from mlpipe.io.tables import partition_files

        paths = [str(p) for p in partition_files(folder)]
        return cls(paths=paths, sizes=[pq.ParquetFile(p).metadata.num_rows for p in paths])

    @property
    def rows(self) -> int:
        """Rows over all partitions."""
        return int(sum(self.sizes))

    def __len__(self) -> int:
        return len(self.sizes)

    @property
    def width(self) -> int:
        """Feature columns (from the first partition's schema when on disk: nothing is read)."""
        if self._arrays is not None:
            return int(self._arrays[0][0].shape[1])
        import pyarrow.parquet as pq

        names = pq.read_schema(self._paths[0]).names  # type: ignore[index]
        return len([n for n in names if n != TARGET_COLUMN])

    def partition(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Partition ``i``: float32 features and the encoded targets."""
        if self._arrays is not None:
            return self._arrays[i]
        frame = pd.read_parquet(self._paths[i])  # type: ignore[index]
        y = frame.pop(TARGET_COLUMN).to_numpy()
        return np.ascontiguousarray(frame.to_numpy(dtype=np.float32)), y

    def targets(self) -> np.ndarray:
        """Every encoded target (small: one number a row)."""
        if self._arrays is not None:
            return np.concatenate([y for _, y in self._arrays])
        columns = [TARGET_COLUMN]
        return np.concatenate(
            [
                pd.read_parquet(p, columns=columns)[TARGET_COLUMN].to_numpy()
                for p in self._paths or []
            ]
        )

    def head(self, rows: int) -> tuple[np.ndarray, np.ndarray]:
        """At most ``rows`` rows, spread evenly over every partition, in proportion to its size.

        Rows are taken at even steps through each partition (a partition keeps the source's
        order), so a sorted source still gives a uniform sample; all rows when there are at
        most ``rows``.
        """
        if self.rows <= rows:
            parts = [self.partition(i) for i in range(len(self))]
        else:
            # Largest remainders: the shares add up to exactly ``rows``.
            exact = np.array(self.sizes, dtype=np.float64) * rows / self.rows
            takes = np.floor(exact).astype(np.int64)
            takes[np.argsort(takes - exact)[: rows - int(takes.sum())]] += 1
            parts = []
            for i, (size, take) in enumerate(zip(self.sizes, takes, strict=True)):
                if take:
                    x, y = self.partition(i)
                    at = np.linspace(0, size - 1, take).round().astype(np.int64)
                    parts.append((x[at], y[at]))
        if len(parts) == 1:
            return parts[0]
        return np.concatenate([x for x, _ in parts]), np.concatenate([y for _, y in parts])


def fit_network(
    train: Rows,
    val: Rows,
    spec: dict[str, Any],
    cfg: TrainConfig,
    seed: int,
    on_epoch: EpochCallback | None = None,
    standardise: tuple[float, float] | None = None,
    rank: int = 0,
    world: int = 1,
) -> tuple[nn.Module, list[dict[str, float]], int]:
    """Train with Adam and early stopping on validation loss; return the best weights.

    Each epoch visits the training partitions in a seeded random order and each partition's
    rows in a seeded random order (a shuffle buffer of one partition; the partitions are
    uniform samples). One partition is the whole-table case: one permutation per epoch.

    With ``world`` ranks (an initialised ``torch.distributed`` process group, see
    :mod:`mlpipe.learn.distributed`) every rank draws the same batches and trains on its
    ``rank::world`` share of each; DistributedDataParallel sums the shares' gradients into the
    gradient of the whole batch. The batches, the epochs' metrics and early stopping are
    therefore those of one process (up to float rounding and dropout masks).

    Args:
        train: Training features (float32) and targets: class indices (int64) or regression
            targets.
        val: Validation rows, encoded like ``train``.
        spec: Network spec for :func:`build_network`.
        cfg: Training settings.
        seed: Seed for initialisation and batch order.
        on_epoch: Called with each epoch's metrics (``epoch``, ``train_loss``, ``val_loss``,
            and ``train_accuracy``/``val_accuracy`` for classification).
        standardise: Regression: the training target's ``(mean, std)``, subtracted and
            divided out of every target.
        rank: This process's rank in the process group.
        world: Ranks in the process group (1: no process group).

    Returns:
        ``(network on CPU with the best validation weights, history, best epoch)``.

    Raises:
        TrainingError: The loss became infinite or NaN (a learning rate far too high).
    """
    seed_everything(seed)
    device = pick_device(cfg.device)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", rank % torch.cuda.device_count())
    classify = spec["task"] != "regression"
    net = build_network(spec).to(device)
    model: nn.Module = net
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        # Rank 0's initial weights are broadcast; dropout masks differ per rank.
        model = DistributedDataParallel(net, device_ids=[device] if device.type == "cuda" else None)
        torch.manual_seed(seed + rank)
    loss_fn: nn.Module = nn.CrossEntropyLoss() if classify else nn.MSELoss()
    summed: nn.Module = (nn.CrossEntropyLoss if classify else nn.MSELoss)(reduction="sum")
    optimiser = torch.optim.Adam(
        model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay
    )

    def tensors(rows: Rows, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = rows.partition(i)
        if standardise is not None:
            y = (y - standardise[0]) / standardise[1]
        # torch.tensor copies: arrays read from Parquet are read-only views.
        xt, yt = torch.tensor(x, device=device), torch.tensor(y, device=device)
        return xt, (yt if classify else yt.float().unsqueeze(1))

    # Validation partitions are shared out over the ranks; their sums are added up.
    mine_val = list(range(rank, len(val), world))
    # One partition stays on the device for every epoch; more are read one at a time.
    cached = {0: tensors(train, 0)} if len(train) == 1 else {}
    cached_val = {p: tensors(val, p) for p in mine_val} if len(mine_val) == 1 else {}
    generator = torch.Generator().manual_seed(seed)
    batch = batch_size(cfg, train.rows)
    best_loss, best_epoch, best_state = math.inf, 0, copy.deepcopy(net.state_dict())
    history: list[dict[str, float]] = []
    for epoch in range(1, cfg.max_epochs + 1):
        model.train()
        # Accumulated on the device and read once per epoch: a per-batch .item() is a host sync.
        total = torch.zeros((), dtype=torch.float64, device=device)
        correct = torch.zeros((), dtype=torch.int64, device=device)
        parts = [0] if len(train) == 1 else torch.randperm(len(train), generator=generator).tolist()
        done = Progress(f"epoch {epoch}/{cfg.max_epochs}", len(parts)) if rank == 0 else None
        for p in parts:
            xt, yt = cached[p] if p in cached else tensors(train, p)
            # Every rank draws the same order (same generator, same draws).
            order = torch.randperm(len(xt), generator=generator).to(device)
            for start in range(0, len(order), batch):
                idx = order[start : start + batch]
                mine = idx[rank::world] if world > 1 else idx
                optimiser.zero_grad()
                out = model(xt[mine])
                if world == 1:
                    loss = loss_fn(out, yt[mine])
                    tally = loss.detach().double() * len(idx)
                else:
                    # DDP averages over ranks: scaled so that the average is the batch mean.
                    part_sum = summed(out, yt[mine])
                    loss = part_sum * (world / len(idx))
                    tally = part_sum.detach().double()
                loss.backward()
                optimiser.step()
                total += tally
                if classify:
                    correct += (out.detach().argmax(1) == yt[mine]).sum()
            if done is not None:
                done.step(len(xt))
        net.eval()
        val_total, val_correct = 0.0, 0
        with torch.no_grad():
            for p in mine_val:
                xv, yv = cached_val[p] if p in cached_val else tensors(val, p)
                val_out = net(xv)
                val_total += float(loss_fn(val_out, yv)) * len(xv)
                if classify:
                    val_correct += int((val_out.argmax(1) == yv).sum())
        sums = [float(total), float(correct), val_total, float(val_correct)]
        if world > 1:
            sums = _add_over_ranks(sums, device)
        train_loss, val_loss = sums[0] / train.rows, sums[2] / val.rows
        if not (math.isfinite(train_loss) and math.isfinite(val_loss)):
            raise TrainingError(
                f"training diverged at epoch {epoch} (train loss {train_loss:.3g}, validation "
                f"loss {val_loss:.3g}): lower train.learning_rate (now {cfg.learning_rate:g})"
            )
        row = {"epoch": float(epoch), "train_loss": train_loss, "val_loss": val_loss}
        if classify:
            row["train_accuracy"] = sums[1] / train.rows
            row["val_accuracy"] = sums[3] / val.rows
        history.append(row)
        if on_epoch:
            on_epoch(row)
        # The same sums on every rank: every rank takes the same decision.
        if val_loss < best_loss - 1e-6:
            best_loss, best_epoch, best_state = val_loss, epoch, copy.deepcopy(net.state_dict())
        elif epoch - best_epoch >= cfg.patience:
            break
    net.load_state_dict(best_state)
    return net.cpu().eval(), history, best_epoch


def _add_over_ranks(values: list[float], device: torch.device) -> list[float]:
    """Each value summed over every rank of the process group."""
    import torch.distributed as dist

    sums = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(sums)
    return [float(v) for v in sums.cpu()]


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


class _Background:
    """A call running in a daemon thread.

    A failure or signal in the caller does not wait for it, and the process can exit while it
    runs (a pool's worker threads are joined at exit).
    """

    def __init__(self, fn: Callable[..., Any], *args: Any):
        self._value: Any = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(fn, *args), daemon=True)
        self._thread.start()

    def _run(self, fn: Callable[..., Any], *args: Any) -> None:
        try:
            self._value = fn(*args)
        except BaseException as err:  # re-raised in the caller's thread by result()
            self._error = err

    def result(self) -> Any:
        """Wait for the call; return its value or raise its exception."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value


def _fit_baseline_on(
    threads: int, x: np.ndarray, y: np.ndarray, classify: bool, kind: str, seed: int
) -> Any:
    """:func:`fit_baseline` with its BLAS/OpenMP threads capped (it shares the machine)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=threads):
        return fit_baseline(x, y, classify, kind, seed)


def fit_trivial(y: np.ndarray, classify: bool) -> Any:
    """The trivial predictor: training class priors, or the training mean."""
    from sklearn.dummy import DummyClassifier, DummyRegressor

    if classify:
        # Fitted on the counts (weights): the same priors without a row per training row.
        labels, counts = np.unique(y, return_counts=True)
        return DummyClassifier(strategy="prior").fit(
            np.zeros((len(labels), 1)), labels, sample_weight=counts
        )
    return DummyRegressor(strategy="mean").fit(np.zeros((len(y), 1)), y)


def model_outputs(model: Any, x: np.ndarray, n_classes: int | None) -> np.ndarray:
    """A scikit-learn model's outputs: probabilities over all classes, or predictions."""
    if not n_classes:
        return np.asarray(model.predict(x), dtype=np.float64)
    proba = np.zeros((len(x), n_classes))
    proba[:, model.classes_] = model.predict_proba(x).astype(np.float64)
    # float32 inputs give float32 probabilities whose rows miss 1.0 by rounding; renormalise.
    return proba / proba.sum(axis=1, keepdims=True)


@dataclass
class Fitted:
    """What ``fit`` produced: the served predictor and the two comparison candidates."""

    predictor: Predictor
    history: list[dict[str, float]]
    best_epoch: int
    seconds: float
    batch_size: int
    baseline: Any | None
    baseline_kind: str
    trivial: Any
    baseline_rows: int = 0

    def outputs(self, rows: pd.DataFrame) -> dict[str, np.ndarray]:
        """Outputs of every candidate on raw rows (``network``, ``baseline``, ``trivial``)."""
        return candidate_outputs(self.predictor, self.baseline, self.trivial, rows)


def candidate_outputs(
    predictor: Predictor, baseline: Any | None, trivial: Any, rows: pd.DataFrame
) -> dict[str, np.ndarray]:
    """Outputs of the network, the baseline (when trained) and the trivial model on raw rows."""
    n_classes = len(predictor.meta.get("classes") or []) or None
    x = predictor.features(rows)
    out = {
        "network": predictor.raw_outputs(x),
        "trivial": model_outputs(trivial, np.zeros((len(x), 1)), n_classes),
    }
    if baseline is not None:
        out["baseline"] = model_outputs(baseline, x, n_classes)
    return out


def scored_partition(
    part: pd.DataFrame,
    start: int,
    predictor: Predictor,
    candidates: dict[str, Any],
    schema: Schema,
    classes: list[Any] | None,
    evidence: tuple[int, int],
) -> tuple[dict[str, Tally], RowSample]:
    """One test partition scored by every candidate: metric tallies and its evidence sample.

    Both merge over partitions in row order (``start``: this partition's first row).
    ``evidence``: the sample's size and seed. The network is scored through the path serving
    uses: raw rows -> coercion -> net.
    """
    outputs = candidate_outputs(predictor, candidates["baseline"], candidates["trivial"], part)
    y = encode_target(part[schema.target], classes)
    n_classes = len(classes) if classes else None
    tallies = {name: Tally(schema.task, n_classes) for name in outputs}
    for name, out in outputs.items():
        tallies[name].add(y, out, start=start)
    sample = RowSample(*evidence)
    sample.add(start=start, rows=part, y=y, **{f"out:{k}": v for k, v in outputs.items()})
    return tallies, sample


def fit(
    train: pd.DataFrame,
    val: pd.DataFrame,
    schema: Schema,
    classes: list[Any] | None,
    cfg: TrainConfig,
    features: FeatureConfig | Any,
    seed: int,
    on_epoch: EpochCallback | None = None,
) -> Fitted:
    """Fit preprocessing (or use a fitted one), then :func:`fit_rows` on in-memory frames.

    Args:
        train: Cleaned training rows (features and target).
        val: Cleaned validation rows (early stopping).
        schema: Resolved column roles.
        classes: Class labels in output order (``None`` for regression).
        cfg: Training settings.
        features: A :class:`FeatureConfig` to fit a preprocessor on ``train``, or a fitted one.
        seed: Seed of initialisation and batch order.
        on_epoch: Called with each epoch's metrics.

    Returns:
        The fitted candidates.

    Raises:
        TrainingError: The network diverged.
        DataError: Feature values too large to scale (near the float limits).
        ConfigError: The architecture does not fit the data, or the device is unavailable.
    """
    check_magnitudes(val, schema)
    if isinstance(features, FeatureConfig):
        preprocessor, x_train = fit_features(train, schema, features)
    else:
        preprocessor, x_train = features, transform(features, schema, train)
    x_val = transform(preprocessor, schema, val)
    return fit_rows(
        Rows.of(x_train, encode_target(train[schema.target], classes)),
        Rows.of(x_val, encode_target(val[schema.target], classes)),
        preprocessor,
        schema,
        classes,
        cfg,
        seed,
        on_epoch,
    )


def _target_moments(y: np.ndarray) -> tuple[float, float]:
    return float(y.mean()), float(y.std()) or 1.0


def fit_rows(
    train: Rows,
    val: Rows,
    preprocessor: Any,
    schema: Schema,
    classes: list[Any] | None,
    cfg: TrainConfig,
    seed: int,
    on_epoch: EpochCallback | None = None,
    engine: Engine | None = None,
    folder: str | Path | None = None,
) -> Fitted:
    """Fit the network, the baseline and the trivial model on transformed rows.

    The baseline trains on at most :data:`BASELINE_MAX_ROWS` training rows (a uniform sample
    beyond that), in a second thread while the network trains when torch leaves a core free
    (``train.threads`` below the machine's cores): same models, less wall time. With
    ``train.workers`` above 1 the network trains in that many ranks of ``engine``
    (:mod:`mlpipe.learn.distributed`).

    Args:
        train: Transformed training rows and encoded targets.
        val: Transformed validation rows (early stopping).
        preprocessor: The fitted preprocessor that made them (served with the network).
        schema: Resolved column roles.
        classes: Class labels in output order (``None`` for regression).
        cfg: Training settings.
        seed: Seed of initialisation and batch order.
        on_epoch: Called with each epoch's metrics.
        engine: Where the ranks of distributed training run (default: local processes).
        folder: A folder every rank sees (the run directory), for distributed training.

    Returns:
        The fitted candidates.

    Raises:
        TrainingError: The network diverged.
        ConfigError: The architecture does not fit the data, or the device is unavailable.
        EngineError: A rank of distributed training died.
    """
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    pick_device(cfg.device)
    meta: dict[str, Any] = {"schema": schema.model_dump(mode="json"), "classes": classes}
    classify = classes is not None
    y_train = train.targets()
    standardise = None
    if not classify:
        # Standardise the target with training statistics; the predictor undoes it.
        mean, std = _target_moments(y_train)
        meta.update(target_mean=mean, target_std=std)
        standardise = (mean, std)
    n_inputs = train.width
    spec = network_spec(schema, n_inputs, classes, cfg)
    meta["network"] = spec
    spare = (os.cpu_count() or 1) - torch.get_num_threads()
    pending = None
    baseline_rows = 0
    if cfg.baseline != "none":
        x_base, y_base = train.head(BASELINE_MAX_ROWS)
        baseline_rows = len(y_base)
        pending = _Background(
            _fit_baseline_on, max(1, spare), x_base, y_base, classify, cfg.baseline, seed
        )
        del x_base, y_base
        if spare < 1:  # no free core: one after the other
            pending.result()
    started = time.perf_counter()
    if cfg.workers > 1:
        from mlpipe.learn.distributed import fit_network_ranks

        net, history, best_epoch = fit_network_ranks(
            engine or LOCAL, cfg.workers, train, val, spec, cfg, seed, on_epoch, standardise, folder
        )
    else:
        net, history, best_epoch = fit_network(
            train, val, spec, cfg, seed, on_epoch, standardise=standardise
        )
    seconds = time.perf_counter() - started
    baseline = pending.result() if pending is not None else None
    return Fitted(
        predictor=Predictor(preprocessor, net, meta),
        history=history,
        best_epoch=best_epoch,
        seconds=seconds,
        batch_size=batch_size(cfg, train.rows),
        baseline=baseline,
        baseline_kind=cfg.baseline,
        baseline_rows=baseline_rows,
        trivial=fit_trivial(y_train, classify),
    )
