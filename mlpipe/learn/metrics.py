"""The one metric table: every metric mlpipe reports, its task, direction and definition.

Outputs are class probabilities (one column per class, in ``classes`` order) for
classification and predictions in target units for regression; ``y`` holds class indices or
target values. All definitions are scikit-learn's.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import sklearn
from sklearn import metrics as skm

MetricFn = Callable[[np.ndarray, np.ndarray], float]


Terms = Callable[[np.ndarray, np.ndarray], np.ndarray]
Reduce = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Metric:
    """One metric: which tasks it applies to, its direction and its definition.

    ``terms`` and ``reduce`` say how the metric follows from per-row terms, for metrics that
    are functions of row means (accuracy, log loss, MAE, RMSE, R²): ``terms(y, outputs)`` gives
    an ``(n, m)`` array, ``reduce(means)`` maps ``(r, m)`` column means of ``r`` resamples to
    ``r`` values. Resampling then needs no call per resample; ``tests/unit`` checks both paths
    give scikit-learn's values.
    """

    name: str
    tasks: frozenset[str]
    higher_is_better: bool
    fn: Callable[[np.ndarray, np.ndarray, list[int]], float]
    terms: Terms | None = None
    reduce: Reduce | None = None


_CLASSIFY = frozenset({"binary", "multiclass"})
_REGRESS = frozenset({"regression"})


def _roc_auc(y: np.ndarray, p: np.ndarray, labels: list[int]) -> float:
    if len(np.unique(y)) < len(labels):
        raise ValueError("ROC AUC needs every class among the rows")
    if p.shape[1] == 2:
        return float(skm.roc_auc_score(y, p[:, 1]))
    return float(skm.roc_auc_score(y, p, multi_class="ovr", average="macro", labels=labels))


def _column(values: np.ndarray) -> np.ndarray:
    return np.asarray(values, dtype=np.float64).reshape(-1, 1)


def _true_class_proba(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    # scikit-learn clips probabilities to the float64 epsilon before the log.
    eps = np.finfo(np.float64).eps
    return np.clip(p[np.arange(len(y)), y.astype(int)], eps, 1 - eps)


def _r2_terms(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    y = np.asarray(y, dtype=np.float64)
    return np.column_stack([(y - p) ** 2, y, y**2])


def _r2_reduce(m: np.ndarray) -> np.ndarray:
    spread = m[:, 2] - m[:, 1] ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(spread > 0, 1 - m[:, 0] / spread, np.nan)


def _first(m: np.ndarray) -> np.ndarray:
    return m[:, 0]


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric(
            "accuracy",
            _CLASSIFY,
            True,
            lambda y, p, _: float(skm.accuracy_score(y, p.argmax(axis=1))),
            terms=lambda y, p: _column(p.argmax(axis=1) == y),
            reduce=_first,
        ),
        Metric(
            "macro_f1",
            _CLASSIFY,
            True,
            lambda y, p, labels: float(
                skm.f1_score(y, p.argmax(axis=1), average="macro", labels=labels, zero_division=0)
            ),
        ),
        Metric("roc_auc", _CLASSIFY, True, _roc_auc),
        Metric(
            "log_loss",
            _CLASSIFY,
            False,
            lambda y, p, labels: float(skm.log_loss(y, p, labels=labels)),
            terms=lambda y, p: _column(-np.log(_true_class_proba(y, p))),
            reduce=_first,
        ),
        Metric(
            "rmse",
            _REGRESS,
            False,
            lambda y, p, _: float(skm.root_mean_squared_error(y, p)),
            terms=lambda y, p: _column((y - p) ** 2),
            reduce=lambda m: np.sqrt(m[:, 0]),
        ),
        Metric(
            "mae",
            _REGRESS,
            False,
            lambda y, p, _: float(skm.mean_absolute_error(y, p)),
            terms=lambda y, p: _column(np.abs(y - p)),
            reduce=_first,
        ),
        Metric(
            "r2",
            _REGRESS,
            True,
            lambda y, p, _: float(skm.r2_score(y, p)),
            terms=_r2_terms,
            reduce=_r2_reduce,
        ),
    )
}
DEFAULT_PRIMARY = {"binary": "roc_auc", "multiclass": "accuracy", "regression": "rmse"}


def for_task(task: str) -> list[str]:
    """Names of the metrics that apply to a task."""
    return [name for name, m in METRICS.items() if task in m.tasks]


def higher_is_better(name: str) -> bool:
    """Direction of a metric."""
    return METRICS[name].higher_is_better


def metric_fn(name: str, n_classes: int | None) -> MetricFn:
    """``(y, outputs) -> value`` for metric ``name``; raises ValueError where undefined."""
    metric = METRICS[name]
    labels = list(range(n_classes or 0))
    return lambda y, p: metric.fn(y, p, labels)


def score(name: str, y: np.ndarray, outputs: np.ndarray, n_classes: int | None) -> float | None:
    """One metric, or ``None`` where it is undefined (e.g. ROC AUC on rows of one class)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            value = metric_fn(name, n_classes)(y, outputs)
        except ValueError:
            return None
    return value if np.isfinite(value) else None


def score_all(
    task: str, y: np.ndarray, outputs: np.ndarray, n_classes: int | None
) -> dict[str, float]:
    """Every defined metric of the task."""
    out = {}
    for name in for_task(task):
        value = score(name, y, outputs, n_classes)
        if value is not None:
            out[name] = value
    return out


# Resamples drawn per block: bounds the index matrix to BLOCK x rows integers.
RESAMPLE_BLOCK_CELLS = 4_000_000


def resampled(
    name: str,
    y: np.ndarray,
    outputs: list[np.ndarray],
    n_classes: int | None,
    resamples: int,
    seed: int,
) -> list[np.ndarray]:
    """The metric of each model on the same bootstrap resamples of the rows.

    Args:
        name: Metric name.
        y: Targets (class indices or values).
        outputs: One output array per model, row-aligned with ``y``.
        n_classes: Number of classes (``None`` for regression).
        resamples: Number of resamples (rows drawn with replacement, ``len(y)`` each).
        seed: Seed of the resampling; the same seed gives the same resamples.

    Returns:
        One array of ``resamples`` values per model; NaN where the metric is undefined on a
        resample (e.g. ROC AUC without some class).
    """
    metric = METRICS[name]
    rng = np.random.default_rng(seed)
    n = len(y)
    block = max(1, RESAMPLE_BLOCK_CELLS // max(n, 1))
    values: list[list[np.ndarray]] = [[] for _ in outputs]
    terms = [metric.terms(y, out) for out in outputs] if metric.terms is not None else None
    fn = metric_fn(name, n_classes)
    done = 0
    with fast():
        while done < resamples:
            idx = rng.integers(0, n, (min(block, resamples - done), n))
            for k, out in enumerate(outputs):
                if terms is not None and metric.reduce is not None:
                    values[k].append(metric.reduce(terms[k][idx].mean(axis=1)))
                else:
                    values[k].append(np.array([_safe(fn, y[rows], out[rows]) for rows in idx]))
            done += len(idx)
    return [np.concatenate(v) for v in values]


def _safe(fn: MetricFn, y: np.ndarray, out: np.ndarray) -> float:
    try:
        return fn(y, out)
    except ValueError:  # e.g. a resample without some class for ROC AUC
        return float("nan")


@contextlib.contextmanager
def fast() -> Iterator[None]:
    """Skip scikit-learn's per-call argument checks inside resampling loops (same results)."""
    with sklearn.config_context(skip_parameter_validation=True, assume_finite=True):
        yield
