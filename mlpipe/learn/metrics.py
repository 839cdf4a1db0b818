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

from mlpipe.data.sampling import RowSample

MetricFn = Callable[[np.ndarray, np.ndarray], float]


Terms = Callable[[np.ndarray, np.ndarray], np.ndarray]
Reduce = Callable[[np.ndarray], np.ndarray]
# idx -> the metric on each row of ``idx`` (an ``(r, m)`` matrix of row indices, one resample
# per row); built once per model by ``Metric.resampler(y, outputs, labels)``.
OnResamples = Callable[[np.ndarray], np.ndarray]
Resampler = Callable[[np.ndarray, np.ndarray, list[int]], OnResamples]


@dataclass(frozen=True)
class Metric:
    """One metric: which tasks it applies to, its direction and its definition.

    ``fn`` is scikit-learn's definition on one set of rows. ``resampler(y, outputs, labels)``
    does the per-model work once (row terms, sorting) and returns a function computing the
    same value on many resamples at once (an ``(r, m)`` matrix of row indices in, ``r`` values
    out, NaN where undefined) without a Python call per resample; ``tests/unit`` checks that
    both give scikit-learn's values on the same resamples.
    """

    name: str
    tasks: frozenset[str]
    higher_is_better: bool
    fn: Callable[[np.ndarray, np.ndarray, list[int]], float]
    resampler: Resampler


_CLASSIFY = frozenset({"binary", "multiclass"})
_REGRESS = frozenset({"regression"})


def _roc_auc(y: np.ndarray, p: np.ndarray, labels: list[int]) -> float:
    if len(np.unique(y)) < len(labels):
        raise ValueError("ROC AUC needs every class among the rows")
    if p.shape[1] == 2:
        return float(skm.roc_auc_score(y, p[:, 1]))
    return float(skm.roc_auc_score(y, p, multi_class="ovr", average="macro", labels=labels))


def _from_terms(terms: Terms, reduce: Reduce) -> Resampler:
    """Resampled form of a metric that is a function of row means of per-row terms."""

    def resampler(y: np.ndarray, p: np.ndarray, _: list[int]) -> OnResamples:
        columns = list(terms(y, p).T)  # gathered one contiguous column at a time
        return lambda idx: reduce(np.column_stack([c[idx].mean(axis=1) for c in columns]))

    return resampler


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


def _macro_f1_resampler(y: np.ndarray, p: np.ndarray, labels: list[int]) -> OnResamples:
    # One confusion matrix per resample from a single bincount; F1 = 2TP / (support + predicted),
    # 0 where a class is neither present nor predicted (scikit-learn's zero_division=0).
    k = len(labels)
    cell = y.astype(np.int64) * k + p.argmax(axis=1)

    def on(idx: np.ndarray) -> np.ndarray:
        r = len(idx)
        codes = np.arange(r)[:, None] * (k * k) + cell[idx]
        cm = np.bincount(codes.ravel(), minlength=r * k * k).reshape(r, k, k)
        tp = np.diagonal(cm, axis1=1, axis2=2)
        denom = cm.sum(axis=2) + cm.sum(axis=1)
        return np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0).mean(axis=1)

    return on


def _binary_auc(score: np.ndarray, positive: np.ndarray) -> OnResamples:
    """ROC AUC on each resample (Mann-Whitney, ties count half); NaN without both classes.

    The rows are sorted by score once; each resample then sorts integer ranks, which is far
    cheaper than sorting scores per resample.
    """
    n = len(score)
    order = np.argsort(score, kind="stable")
    rank = np.empty(n, dtype=np.int32 if n < 2**31 else np.int64)
    rank[order] = np.arange(n)
    sorted_score, sorted_pos = score[order], positive[order]
    group = np.cumsum(np.r_[True, sorted_score[1:] != sorted_score[:-1]]) - 1
    size, positives = np.bincount(group), np.bincount(group, weights=sorted_pos)
    mixed_ties = bool(np.any((positives > 0) & (positives < size)))

    def on(idx: np.ndarray) -> np.ndarray:
        r, m = idx.shape
        q = np.sort(rank[idx], axis=1)
        pos = sorted_pos[q]
        n_pos = pos.sum(axis=1)
        pairs = (n_pos * (m - n_pos)).astype(np.float64)
        at = np.arange(m)
        if not mixed_ties:
            # No score shared by a positive and a negative: the negatives before a positive at
            # place j are j minus the positives before it.
            credit = np.where(pos, at, 0).sum(axis=1) - n_pos * (n_pos - 1) / 2
        else:
            g = group[q]
            neg = (~pos).astype(np.int64)
            negatives_upto = np.cumsum(neg, axis=1)
            starts = np.ones((r, m), dtype=bool)
            starts[:, 1:] = g[:, 1:] != g[:, :-1]
            first = np.maximum.accumulate(np.where(starts, at, 0), axis=1)
            ends = np.ones((r, m), dtype=bool)
            ends[:, :-1] = starts[:, 1:]
            last = np.minimum.accumulate(np.where(ends, at, m - 1)[:, ::-1], axis=1)[:, ::-1]
            below = np.take_along_axis(negatives_upto - neg, first, axis=1)
            tied = np.take_along_axis(negatives_upto, last, axis=1) - below
            credit = np.where(pos, below + 0.5 * tied, 0.0).sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(pairs > 0, credit / pairs, np.nan)

    return on


def _roc_auc_resampler(y: np.ndarray, p: np.ndarray, labels: list[int]) -> OnResamples:
    if p.shape[1] == 2:
        return _binary_auc(p[:, 1], y == 1)
    # Macro one-vs-rest, undefined unless every class is among the rows (as in _roc_auc).
    per_class = [_binary_auc(p[:, c], y == c) for c in labels]
    return lambda idx: np.mean([on(idx) for on in per_class], axis=0)


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric(
            "accuracy",
            _CLASSIFY,
            True,
            lambda y, p, _: float(skm.accuracy_score(y, p.argmax(axis=1))),
            _from_terms(lambda y, p: _column(p.argmax(axis=1) == y), _first),
        ),
        Metric(
            "macro_f1",
            _CLASSIFY,
            True,
            lambda y, p, labels: float(
                skm.f1_score(y, p.argmax(axis=1), average="macro", labels=labels, zero_division=0)
            ),
            _macro_f1_resampler,
        ),
        Metric("roc_auc", _CLASSIFY, True, _roc_auc, _roc_auc_resampler),
        Metric(
            "log_loss",
            _CLASSIFY,
            False,
            lambda y, p, labels: float(skm.log_loss(y, p, labels=labels)),
            _from_terms(lambda y, p: _column(-np.log(_true_class_proba(y, p))), _first),
        ),
        Metric(
            "rmse",
            _REGRESS,
            False,
            lambda y, p, _: float(skm.root_mean_squared_error(y, p)),
            _from_terms(lambda y, p: _column((y - p) ** 2), lambda m: np.sqrt(m[:, 0])),
        ),
        Metric(
            "mae",
            _REGRESS,
            False,
            lambda y, p, _: float(skm.mean_absolute_error(y, p)),
            _from_terms(lambda y, p: _column(np.abs(y - p)), _first),
        ),
        Metric(
            "r2",
            _REGRESS,
            True,
            lambda y, p, _: float(skm.r2_score(y, p)),
            _from_terms(_r2_terms, _r2_reduce),
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


# Scores kept for ROC AUC per model at most (8 bytes each: 160 MB); see :class:`Tally`.
AUC_MAX_CELLS = 20_000_000
AUC_SEED = 3


class Tally:
    """Mergeable sums from which every metric of a task is computed over rows seen in parts.

    Accuracy and macro F1 come from a confusion matrix, log loss from a sum of per-row terms,
    RMSE, MAE and R2 from sums and Chan-merged moments of the target: exact whatever the
    partitioning (up to float summation order). ROC AUC needs the ranking of all scores, so
    the scores are kept as they are (float64; one column when binary, one per class
    otherwise) for up to :data:`AUC_MAX_CELLS` values: exact on every row up to
    ``AUC_MAX_CELLS / columns`` rows (20M binary, 6.7M with 3 classes), on a uniform sample of
    that many rows beyond (:attr:`auc_rows`), so memory stays bounded.
    """

    def __init__(self, task: str, n_classes: int | None) -> None:
        """An empty tally for ``task`` (``n_classes`` for classification)."""
        self.task = task
        self.k = n_classes or 0
        self.rows = 0
        self.confusion = np.zeros((self.k, self.k), dtype=np.int64)
        self.log_loss = 0.0
        kept = 1 if self.k == 2 else max(self.k, 1)
        self.ranked = RowSample(max(1, AUC_MAX_CELLS // kept), seed=AUC_SEED)
        self.sse = self.sae = self.mean = self.m2 = 0.0

    def add(self, y: np.ndarray, outputs: np.ndarray, start: int | None = None) -> None:
        """Add rows: targets (class indices or values) and the model's outputs on them.

        ``start``: the first row's position in the table (see :meth:`RowSample.add`).
        """
        n = len(y)
        if not n:
            return
        if self.task in _CLASSIFY:
            codes = y.astype(np.int64) * self.k + outputs.argmax(axis=1)
            self.confusion += np.bincount(codes, minlength=self.k * self.k).reshape(self.k, -1)
            self.log_loss += float(-np.log(_true_class_proba(y, outputs)).sum())
            kept = outputs[:, 1:] if outputs.shape[1] == 2 else outputs
            self.ranked.add(
                start=start, y=y.astype(np.int32), scores=np.asarray(kept, dtype=np.float64)
            )
            self.rows += n
        else:
            y64 = np.asarray(y, dtype=np.float64)
            err = y64 - np.asarray(outputs, dtype=np.float64)
            mean = float(y64.mean())
            self._combine(n, float(err @ err), float(np.abs(err).sum()), mean,
                          float(((y64 - mean) ** 2).sum()))  # fmt: skip

    def merge(self, later: Tally) -> None:
        """Add the tally of the rows that follow (same task and classes)."""
        if self.task in _CLASSIFY:
            self.confusion += later.confusion
            self.log_loss += later.log_loss
            self.ranked.merge(later.ranked)
            self.rows += later.rows
        elif later.rows:
            self._combine(later.rows, later.sse, later.sae, later.mean, later.m2)

    def _combine(self, n: int, sse: float, sae: float, mean: float, m2: float) -> None:
        """Add ``n`` regression rows' sums and moments (Chan et al.'s parallel update)."""
        self.sse += sse
        self.sae += sae
        total = self.rows + n
        delta = mean - self.mean
        self.m2 += m2 + delta**2 * self.rows * n / total
        self.mean += delta * n / total
        self.rows = total

    @property
    def auc_rows(self) -> int:
        """Rows ROC AUC is computed on: every row seen, or the uniform sample."""
        return len(self.ranked.keys)

    def metrics(self) -> dict[str, float]:
        """Every metric of the task defined on the rows seen (as :func:`score_all`)."""
        if not self.rows:
            return {}
        n = self.rows
        if self.task not in _CLASSIFY:
            out = {"rmse": float(np.sqrt(self.sse / n)), "mae": self.sae / n}
            if n > 1:  # scikit-learn: 1 when the target is constant and fitted exactly, else 0
                out["r2"] = 1 - self.sse / self.m2 if self.m2 > 0 else float(self.sse == 0)
            return {k: v for k, v in out.items() if np.isfinite(v)}
        cm = self.confusion
        tp = np.diagonal(cm)
        denom = cm.sum(axis=0) + cm.sum(axis=1)
        out = {
            "accuracy": float(tp.sum() / n),
            "macro_f1": float(np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0).mean()),
            "log_loss": self.log_loss / n,
        }
        y, scores = self.ranked.parts["y"], self.ranked.parts["scores"]
        if len(np.unique(y)) == self.k:  # ROC AUC needs every class among the rows
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    auc = (
                        skm.roc_auc_score(y, scores[:, 0])
                        if self.k == 2
                        else skm.roc_auc_score(
                            y,
                            scores,
                            multi_class="ovr",
                            average="macro",
                            labels=list(range(self.k)),
                        )
                    )
                    out["roc_auc"] = float(auc)
                except ValueError:  # NaN outputs, rows not summing to 1: undefined, as in score()
                    pass
        return {k: v for k, v in out.items() if np.isfinite(v)}


# Test rows kept as evidence (paired tests, bootstrap intervals, slices, plots) at most: a
# uniform sample beyond, so their cost and memory stop growing with the test set. Metrics
# themselves are exact over every test row (:class:`Tally`).
EVIDENCE_ROWS = 500_000
# Index cells drawn per block of resamples: bounds the index matrix to this many integers.
RESAMPLE_BLOCK_CELLS = 4_000_000
# Rows per bootstrap resample at most. Larger test sets use the m-out-of-n bootstrap (below):
# the cost of evidence stops growing with the test set, its intervals still describe all rows.
MAX_RESAMPLE_ROWS = 20_000


def resampled(
    name: str,
    y: np.ndarray,
    outputs: list[np.ndarray],
    n_classes: int | None,
    resamples: int,
    seed: int,
    max_rows: int | None = None,
) -> list[np.ndarray]:
    """The metric of each model on the same bootstrap resamples of the rows.

    With ``n`` rows up to ``max_rows`` this is the ordinary bootstrap (``n`` rows drawn with
    replacement). Above it, each resample draws ``m = max_rows`` of the ``n`` rows and its
    deviation from the value on all rows is scaled by ``sqrt(m / n)`` (the m-out-of-n
    bootstrap): every metric here is a smooth or U-statistic whose spread shrinks as
    ``1/sqrt(rows)``, so the scaled values have the spread of an ``n``-row bootstrap while the
    cost stays that of ``m`` rows.

    Args:
        name: Metric name.
        y: Targets (class indices or values).
        outputs: One output array per model, row-aligned with ``y``.
        n_classes: Number of classes (``None`` for regression).
        resamples: Number of resamples.
        seed: Seed of the resampling; the same seed gives the same resamples.
        max_rows: Rows per resample at most (default :data:`MAX_RESAMPLE_ROWS`).

    Returns:
        One array of ``resamples`` values per model; NaN where the metric is undefined on a
        resample (e.g. ROC AUC without some class).
    """
    metric = METRICS[name]
    labels = list(range(n_classes or 0))
    rng = np.random.default_rng(seed)
    n = len(y)
    m = min(n, max_rows or MAX_RESAMPLE_ROWS)
    block = max(1, RESAMPLE_BLOCK_CELLS // max(m, 1))
    with np.errstate(all="ignore"):
        models = [metric.resampler(y, out, labels) for out in outputs]
        values: list[list[np.ndarray]] = [[] for _ in outputs]
        done = 0
        while done < resamples:
            idx = rng.integers(0, n, (min(block, resamples - done), m))
            for k, on in enumerate(models):
                values[k].append(on(idx))
            done += len(idx)
        drawn = [np.concatenate(v) for v in values]
        if m == n:
            return drawn
        # The value on all rows: the same computation on the one "resample" of every row.
        whole = [on(np.arange(n)[None, :])[0] for on in models]
    scale = np.sqrt(m / n)
    return [w + scale * (v - w) for w, v in zip(whole, drawn, strict=True)]


@contextlib.contextmanager
def fast() -> Iterator[None]:
    """Skip scikit-learn's per-call argument checks inside resampling loops (same results)."""
    with sklearn.config_context(skip_parameter_validation=True, assume_finite=True):
        yield
