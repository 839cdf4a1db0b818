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


@dataclass(frozen=True)
class Metric:
    """One metric: which tasks it applies to, its direction and its definition."""

    name: str
    tasks: frozenset[str]
    higher_is_better: bool
    fn: Callable[[np.ndarray, np.ndarray, list[int]], float]


_CLASSIFY = frozenset({"binary", "multiclass"})
_REGRESS = frozenset({"regression"})


def _roc_auc(y: np.ndarray, p: np.ndarray, labels: list[int]) -> float:
    if len(np.unique(y)) < len(labels):
        raise ValueError("ROC AUC needs every class among the rows")
    if p.shape[1] == 2:
        return float(skm.roc_auc_score(y, p[:, 1]))
    return float(skm.roc_auc_score(y, p, multi_class="ovr", average="macro", labels=labels))


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric(
            "accuracy",
            _CLASSIFY,
            True,
            lambda y, p, _: float(skm.accuracy_score(y, p.argmax(axis=1))),
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
        ),
        Metric("rmse", _REGRESS, False, lambda y, p, _: float(skm.root_mean_squared_error(y, p))),
        Metric("mae", _REGRESS, False, lambda y, p, _: float(skm.mean_absolute_error(y, p))),
        Metric("r2", _REGRESS, True, lambda y, p, _: float(skm.r2_score(y, p))),
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


@contextlib.contextmanager
def fast() -> Iterator[None]:
    """Skip scikit-learn's per-call argument checks inside resampling loops (same results)."""
    with sklearn.config_context(skip_parameter_validation=True, assume_finite=True):
        yield
