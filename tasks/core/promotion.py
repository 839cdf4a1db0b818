"""Challenger vs champion on the same held-out rows: evidence, not a single number.

A challenger takes the `champion` alias only when (1) it beats the champion on the primary
metric by at least a margin, (2) a paired test on the same test rows supports the improvement
(a seeded paired bootstrap confidence interval of the metric difference that excludes zero, or
McNemar's exact test for accuracy), and (3) no configured slice gets worse by more than a
tolerance. A first model must pass absolute thresholds instead.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict
from scipy import stats
from sklearn import metrics as skm

LOWER_IS_BETTER = {"rmse", "mae", "log_loss"}

MetricFn = Callable[[np.ndarray, np.ndarray], float]


def metric_fn(name: str, n_classes: int | None) -> MetricFn:
    """Score ``(y_true, outputs)``: class indices + probabilities, or regression values."""
    labels = list(range(n_classes or 0))
    fns: dict[str, MetricFn] = {
        "accuracy": lambda y, p: float(skm.accuracy_score(y, p.argmax(axis=1))),
        "macro_f1": lambda y, p: float(
            skm.f1_score(y, p.argmax(axis=1), average="macro", labels=labels, zero_division=0)
        ),
        "log_loss": lambda y, p: float(skm.log_loss(y, p, labels=labels)),
        "roc_auc": lambda y, p: float(
            skm.roc_auc_score(y, p[:, 1])
            if p.shape[1] == 2
            else skm.roc_auc_score(y, p, multi_class="ovr", labels=labels)
        ),
        "rmse": lambda y, p: float(skm.root_mean_squared_error(y, p)),
        "mae": lambda y, p: float(skm.mean_absolute_error(y, p)),
        "r2": lambda y, p: float(skm.r2_score(y, p)),
    }
    if name not in fns:
        raise KeyError(f"unknown metric '{name}'")
    return fns[name]


class PairedTest(BaseModel):
    """Result of the paired comparison on the same rows.

    ``difference`` is challenger minus champion, signed so that positive is better.
    """

    model_config = ConfigDict(frozen=True)

    method: str
    difference: float
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None
    supports: bool


def paired_bootstrap(
    y: np.ndarray,
    challenger: np.ndarray,
    champion: np.ndarray,
    fn: MetricFn,
    higher_is_better: bool,
    *,
    resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> PairedTest:
    """Percentile CI of the metric difference over row resamples shared by both models.

    Returns:
        The test; ``supports`` when the whole interval is above zero (in the better direction).
    """
    sign = 1.0 if higher_is_better else -1.0
    rng = np.random.default_rng(seed)
    n = len(y)
    diffs = []
    for _ in range(resamples):
        idx = rng.integers(0, n, n)
        try:
            diffs.append(sign * (fn(y[idx], challenger[idx]) - fn(y[idx], champion[idx])))
        except ValueError:  # e.g. a resample without some class for ROC AUC
            continue
    observed = sign * (fn(y, challenger) - fn(y, champion))
    if not diffs:
        return PairedTest(method="paired bootstrap", difference=observed, supports=False)
    low, high = np.quantile(diffs, [(1 - level) / 2, 1 - (1 - level) / 2])
    return PairedTest(
        method=f"paired bootstrap ({len(diffs)} resamples, {level:.0%} CI)",
        difference=observed,
        ci_low=float(low),
        ci_high=float(high),
        supports=bool(low > 0),
    )


def mcnemar(
    y: np.ndarray, challenger: np.ndarray, champion: np.ndarray, alpha: float = 0.05
) -> PairedTest:
    """McNemar's exact test on the rows where exactly one model is right (accuracy only)."""
    right_new = challenger.argmax(axis=1) == y
    right_old = champion.argmax(axis=1) == y
    only_new = int(np.sum(right_new & ~right_old))
    only_old = int(np.sum(~right_new & right_old))
    discordant = only_new + only_old
    p_value = 1.0 if discordant == 0 else float(stats.binomtest(only_new, discordant, 0.5).pvalue)
    return PairedTest(
        method=f"McNemar exact ({only_new} rows only the challenger gets right, {only_old} only "
        "the champion)",
        difference=float(right_new.mean() - right_old.mean()),
        p_value=p_value,
        supports=bool(only_new > only_old and p_value < alpha),
    )


def bootstrap_ci(
    y: np.ndarray, outputs: np.ndarray, fn: MetricFn, *, resamples: int = 500, seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float] | None:  # fmt: skip
    """Percentile bootstrap interval of one model's metric on the test rows."""
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(resamples):
        idx = rng.integers(0, len(y), len(y))
        try:
            values.append(fn(y[idx], outputs[idx]))
        except ValueError:
            continue
    if not values:
        return None
    low, high = np.quantile(values, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(low), float(high)


class SliceResult(BaseModel):
    """One slice's metric for both models (signed change: positive is better)."""

    model_config = ConfigDict(frozen=True)

    slice: str
    rows: int
    challenger: float
    champion: float
    change: float
    worse: bool


def slice_metric(fn: MetricFn, y: np.ndarray, outputs: np.ndarray) -> float | None:
    """A metric on one slice, or None where it is undefined (e.g. ROC AUC within one class)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            value = fn(y, outputs)
        except ValueError:
            return None
    return value if np.isfinite(value) else None


def slice_results(
    y: np.ndarray,
    challenger: np.ndarray,
    champion: np.ndarray,
    groups: dict[str, np.ndarray],
    fn: MetricFn,
    higher_is_better: bool,
    tolerance: float,
    min_rows: int = 5,
) -> list[SliceResult]:
    """Metric per slice (boolean row masks) for both models; flag slices worse than tolerance."""
    sign = 1.0 if higher_is_better else -1.0
    out = []
    for name, mask in groups.items():
        if int(mask.sum()) < min_rows:
            continue
        new, old = (
            slice_metric(fn, y[mask], challenger[mask]),
            slice_metric(fn, y[mask], champion[mask]),
        )
        if new is None or old is None:
            continue
        change = sign * (new - old)
        out.append(SliceResult(slice=name, rows=int(mask.sum()), challenger=new, champion=old,
                               change=change, worse=bool(change < -tolerance)))  # fmt: skip
    return out


def slice_masks(test: pd.DataFrame, target_idx: np.ndarray, classes: list | None,
                columns: list[str]) -> dict[str, np.ndarray]:  # fmt: skip
    """Boolean masks per slice: ``class=<label>`` for each class, ``<col>=<value>`` per column."""
    groups: dict[str, np.ndarray] = {}
    if classes:
        for i, label in enumerate(classes):
            groups[f"class={label}"] = target_idx == i
    for col in columns:
        if col not in test.columns:
            continue
        values = test[col].astype("str").fillna("<missing>").to_numpy()
        for value in pd.unique(values):
            groups[f"{col}={value}"] = values == value
    return groups


class PromotionDecision(BaseModel):
    """The gate's decision with every number behind it."""

    model_config = ConfigDict(frozen=True)

    promote: bool
    reason: str
    metric: str
    challenger_value: float
    champion_value: float | None = None
    champion_version: str | None = None
    margin: float = 0.0
    test: PairedTest | None = None
    slices: list[SliceResult] = []
    thresholds: dict[str, float] = {}

    def markdown(self) -> str:
        """Readable decision for the Prefect UI and model cards."""
        verdict = "PROMOTED" if self.promote else "NOT PROMOTED"
        lines = [f"# Promotion: {verdict}", "", self.reason, ""]
        lines.append(f"- {self.metric}: challenger {self.challenger_value:.4f}"
                     + (f", champion v{self.champion_version} {self.champion_value:.4f}"
                        if self.champion_value is not None else ""))  # fmt: skip
        if self.test is not None:
            t = self.test
            ci = f", CI [{t.ci_low:.4f}, {t.ci_high:.4f}]" if t.ci_low is not None else ""
            pv = f", p = {t.p_value:.3g}" if t.p_value is not None else ""
            lines.append(f"- {t.method}: difference {t.difference:+.4f}{ci}{pv}")
        if self.slices:
            lines += ["", "| slice | rows | challenger | champion | change | worse |",
                      "|---|---|---|---|---|---|"]  # fmt: skip
            lines += [f"| {s.slice} | {s.rows} | {s.challenger:.4f} | {s.champion:.4f} | "
                      f"{s.change:+.4f} | {'**yes**' if s.worse else 'no'} |"
                      for s in self.slices]  # fmt: skip
        return "\n".join(lines) + "\n"


def check_thresholds(metrics: dict[str, float], thresholds: dict[str, float]) -> list[str]:
    """Absolute thresholds for a first model (``{"accuracy": 0.9, "rmse": 60}``): failures."""
    failures = []
    for name, bound in thresholds.items():
        value = metrics.get(f"test_{name}")
        if value is None:
            failures.append(f"{name} not measured")
        elif name in LOWER_IS_BETTER and value > bound:
            failures.append(f"{name} {value:.4f} > {bound}")
        elif name not in LOWER_IS_BETTER and value < bound:
            failures.append(f"{name} {value:.4f} < {bound}")
    return failures
