"""The promotion gate on evidence: pure statistics and the decision.

A challenger takes the `champion` alias only when it is sound on its own and better than the
champion on rows neither of them trained on:

1. Sound (eligible): significantly better than a trivial predictor (class priors or the mean),
   and not significantly worse than the run's own scikit-learn baseline (beyond
   ``baseline_tolerance``), both by paired bootstrap on the test rows. A first version must
   also pass absolute thresholds.
2. Better: on the test rows held out by both versions (at least ``min_shared_rows``), it beats
   the champion by the margin, a paired test supports the gain (bootstrap CI of the difference
   excluding zero, or McNemar's exact test for accuracy), and no slice gets worse than a
   tolerance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict
from scipy import stats

from mlpipe.config import PromotionConfig
from mlpipe.learn.metrics import fast, higher_is_better, metric_fn, resampled, score
from mlpipe.reports.markdown import cell


class PairedTest(BaseModel):
    """Result of a paired comparison on the same rows.

    ``difference`` is the first model minus the second, signed so that positive is better.
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
    first: np.ndarray,
    second: np.ndarray,
    metric: str,
    n_classes: int | None,
    *,
    resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> PairedTest:
    """Percentile CI of the metric difference over row resamples shared by both models.

    Returns:
        The test; ``supports`` when the whole interval is above zero (in the better direction).
    """
    sign = 1.0 if higher_is_better(metric) else -1.0
    with fast():
        fn = metric_fn(metric, n_classes)
        observed = sign * (fn(y, first) - fn(y, second))
    a, b = resampled(metric, y, [first, second], n_classes, resamples, seed)
    diffs = sign * (a - b)
    diffs = diffs[np.isfinite(diffs)]
    if not len(diffs):
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
    y: np.ndarray, first: np.ndarray, second: np.ndarray, alpha: float = 0.05
) -> PairedTest:
    """McNemar's exact test on the rows where exactly one model is right (accuracy only)."""
    right_new = first.argmax(axis=1) == y
    right_old = second.argmax(axis=1) == y
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
    y: np.ndarray, outputs: np.ndarray, metric: str, n_classes: int | None, *,
    resamples: int = 500, seed: int = 0, level: float = 0.95,
) -> tuple[float, float] | None:  # fmt: skip
    """Percentile bootstrap interval of one model's metric on the test rows."""
    (values,) = resampled(metric, y, [outputs], n_classes, resamples, seed)
    values = values[np.isfinite(values)]
    if not len(values):
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


def slice_results(
    y: np.ndarray,
    challenger: np.ndarray,
    champion: np.ndarray,
    groups: dict[str, np.ndarray],
    name: str,
    n_classes: int | None,
    tolerance: float,
    min_rows: int = 5,
) -> list[SliceResult]:
    """Metric per slice (boolean row masks) for both models; flag slices worse than tolerance."""
    sign = 1.0 if higher_is_better(name) else -1.0
    out = []
    for label, mask in groups.items():
        if int(mask.sum()) < min_rows:
            continue
        new = score(name, y[mask], challenger[mask], n_classes)
        old = score(name, y[mask], champion[mask], n_classes)
        if new is None or old is None:
            continue
        change = sign * (new - old)
        out.append(
            SliceResult(
                slice=label,
                rows=int(mask.sum()),
                challenger=new,
                champion=old,
                change=change,
                worse=bool(change < -tolerance),
            )
        )
    return out


def slice_masks(
    test: pd.DataFrame, target_idx: np.ndarray, classes: list | None, columns: list[str]
) -> dict[str, np.ndarray]:
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


def check_thresholds(metrics: dict[str, float], thresholds: dict[str, float]) -> list[str]:
    """Absolute thresholds for a first model (``{"accuracy": 0.9, "rmse": 60}``): failures."""
    failures = []
    for name, bound in thresholds.items():
        value = metrics.get(f"test_{name}")
        if value is None:
            failures.append(f"{name} not measured")
        elif not higher_is_better(name) and value > bound:
            failures.append(f"{name} {value:.4f} > {bound}")
        elif higher_is_better(name) and value < bound:
            failures.append(f"{name} {value:.4f} < {bound}")
    return failures


@dataclass(frozen=True)
class ChampionEvidence:
    """The champion's side of a comparison.

    Attributes:
        version: Champion version.
        shared: Mask over the challenger's test rows: rows the champion also held out.
        outputs: Champion outputs on the shared rows.
        problem: Why the two versions cannot be compared at all (another target, other
            classes, missing feature columns), or ``None``.
    """

    version: str
    shared: np.ndarray
    outputs: np.ndarray | None
    problem: str | None = None


class PromotionDecision(BaseModel):
    """The gate's decision with every number behind it."""

    model_config = ConfigDict(frozen=True)

    promote: bool
    eligible: bool
    reason: str
    metric: str
    challenger_value: float
    trivial_value: float | None = None
    trivial_test: PairedTest | None = None
    baseline_kind: str | None = None
    baseline_value: float | None = None
    baseline_test: PairedTest | None = None
    champion_value: float | None = None
    champion_version: str | None = None
    shared_rows: int | None = None
    margin: float = 0.0
    test: PairedTest | None = None
    slices: list[SliceResult] = []
    thresholds: dict[str, float] = {}

    def markdown(self) -> str:
        """Readable decision for the Prefect UI and model cards."""
        verdict = "PROMOTED" if self.promote else "NOT PROMOTED"
        lines = [f"# Promotion: {verdict}", "", cell(self.reason), ""]
        lines.append(f"- {self.metric} on the test split: {self.challenger_value:.4f}")
        if self.trivial_value is not None:
            t = self.trivial_test
            ci = (
                f" (CI of the gain [{t.ci_low:.4f}, {t.ci_high:.4f}])"
                if t and t.ci_low is not None
                else ""
            )
            lines.append(f"- trivial predictor: {self.trivial_value:.4f}{ci}")
        if self.baseline_value is not None:
            lines.append(f"- baseline ({self.baseline_kind}): {self.baseline_value:.4f}")
        lines.append(f"- eligible for champion: {'yes' if self.eligible else 'no'}")
        if self.champion_version is not None:
            shared = f" on {self.shared_rows} shared test rows" if self.shared_rows else ""
            value = f" {self.champion_value:.4f}" if self.champion_value is not None else ""
            lines.append(f"- compared with champion v{self.champion_version}{value}{shared}")
        if self.test is not None:
            t = self.test
            ci = f", CI [{t.ci_low:.4f}, {t.ci_high:.4f}]" if t.ci_low is not None else ""
            pv = f", p = {t.p_value:.3g}" if t.p_value is not None else ""
            lines.append(f"- {t.method}: difference {t.difference:+.4f}{ci}{pv}")
        if self.slices:
            lines += [
                "",
                "| slice | rows | challenger | champion | change | worse |",
                "|---|---|---|---|---|---|",
            ]
            lines += [
                f"| {cell(s.slice)} | {s.rows} | {s.challenger:.4f} | {s.champion:.4f} | "
                f"{s.change:+.4f} | {'**yes**' if s.worse else 'no'} |"
                for s in self.slices
            ]
        return "\n".join(lines) + "\n"


def decide(
    y: np.ndarray,
    network: np.ndarray,
    *,
    trivial: np.ndarray,
    baseline: np.ndarray | None,
    baseline_kind: str | None,
    champion: ChampionEvidence | None,
    masks: dict[str, np.ndarray],
    metrics: dict[str, float],
    metric: str,
    n_classes: int | None,
    cfg: PromotionConfig,
    seed: int,
) -> PromotionDecision:
    """The promotion decision (pure), on the challenger's test rows.

    Args:
        y: Encoded test targets.
        network: The challenger network's outputs on the test rows.
        trivial: The trivial predictor's outputs on the same rows.
        baseline: The run's baseline outputs (``None`` when no baseline was trained).
        baseline_kind: The baseline's name, for messages.
        champion: The champion's evidence, or ``None`` for a first version.
        masks: Slice masks over the test rows.
        metrics: The challenger's test metrics (``test_<name>``), for absolute thresholds.
        metric: Primary metric name.
        n_classes: Number of classes (``None`` for regression).
        cfg: Promotion settings.
        seed: Bootstrap seed.

    Returns:
        The decision; ``eligible`` tells whether the version is sound on its own.
    """
    fn = metric_fn(metric, n_classes)
    higher = higher_is_better(metric)
    sign = 1.0 if higher else -1.0
    with fast():
        value = fn(y, network)
        trivial_value = fn(y, trivial)
        baseline_value = fn(y, baseline) if baseline is not None else None
    unsound: list[str] = []
    vs_trivial = paired_bootstrap(
        y, network, trivial, metric, n_classes, resamples=cfg.resamples, seed=seed,
        level=cfg.confidence,
    )  # fmt: skip
    if not vs_trivial.supports:
        unsound.append(
            f"not significantly better than a trivial predictor ({metric} {value:.4f} vs "
            f"{trivial_value:.4f}"
            + (
                f", CI of the gain [{vs_trivial.ci_low:+.4f}, {vs_trivial.ci_high:+.4f}])"
                if vs_trivial.ci_low is not None
                else ")"
            )
        )
    vs_baseline = None
    if baseline is not None and baseline_value is not None:
        vs_baseline = paired_bootstrap(
            y, network, baseline, metric, n_classes, resamples=cfg.resamples, seed=seed,
            level=cfg.confidence,
        )  # fmt: skip
        # Significantly worse: the whole interval of (network - baseline) below -tolerance.
        upper = vs_baseline.ci_high if vs_baseline.ci_high is not None else vs_baseline.difference
        if upper < -cfg.baseline_tolerance:
            unsound.append(
                f"significantly worse than the run's own {baseline_kind} baseline ({metric} "
                f"{value:.4f} vs {baseline_value:.4f}, CI of the difference "
                f"[{vs_baseline.ci_low or vs_baseline.difference:+.4f}, {upper:+.4f}])"
            )
    common = PromotionDecision(
        promote=False,
        eligible=not unsound,
        reason="",
        metric=metric,
        challenger_value=value,
        trivial_value=trivial_value,
        trivial_test=vs_trivial,
        baseline_kind=baseline_kind if baseline is not None else None,
        baseline_value=baseline_value,
        baseline_test=vs_baseline,
        margin=cfg.margin,
    )
    if champion is None:
        failures = unsound + check_thresholds(metrics, cfg.min_metrics)
        if failures:
            reason = "not promoted: first version " + "; ".join(failures)
        elif cfg.min_metrics:
            reason = "first version: sound and passes the absolute thresholds"
        else:
            reason = (
                "first version: sound (better than a trivial predictor, not worse than the "
                "baseline)"
            )
        update = {"promote": not failures, "reason": reason, "thresholds": cfg.min_metrics}
        return common.model_copy(update=update)
    shared = champion.shared
    n_shared = int(shared.sum())
    base = common.model_copy(update={"champion_version": champion.version, "shared_rows": n_shared})
    if champion.problem is not None:
        reasons = [
            *unsound,
            f"not comparable with champion v{champion.version}: {champion.problem}",
        ]
        return base.model_copy(update={"reason": "not promoted: " + "; ".join(reasons)})
    if n_shared < cfg.min_shared_rows or champion.outputs is None:
        reasons = [
            *unsound,
            f"only {n_shared} test rows are held out by both this version and "
            f"champion v{champion.version} (need {cfg.min_shared_rows}): no fair comparison",
        ]
        return base.model_copy(update={"reason": "not promoted: " + "; ".join(reasons)})
    ys, mine, theirs = y[shared], network[shared], champion.outputs
    with fast():
        old = fn(ys, theirs)
        new = fn(ys, mine)
    gain = sign * (new - old)
    if cfg.test == "mcnemar" and metric == "accuracy" and n_classes:
        test = mcnemar(ys, mine, theirs, alpha=1 - cfg.confidence)
    else:
        test = paired_bootstrap(
            ys, mine, theirs, metric, n_classes, resamples=cfg.resamples, seed=seed,
            level=cfg.confidence,
        )  # fmt: skip
    shared_masks = {k: m[shared] for k, m in masks.items()}
    slices = slice_results(ys, mine, theirs, shared_masks, metric, n_classes, cfg.slice_tolerance)
    worse = [s.slice for s in slices if s.worse]
    reasons = list(unsound)
    if gain < cfg.margin or gain <= 0:
        reasons.append(f"{metric} gain {gain:+.4f} is below the margin {cfg.margin}")
    if not test.supports:
        reasons.append(f"the {test.method} does not support an improvement")
    if worse:
        reasons.append(f"slices worse by more than {cfg.slice_tolerance}: {', '.join(worse)}")
    promote = not reasons
    reason = (
        f"better than champion v{champion.version} on {n_shared} shared test rows: {metric} "
        f"{new:.4f} vs {old:.4f}, {test.method} supports it, no slice worse than "
        f"{cfg.slice_tolerance}"
        if promote
        else "not promoted: " + "; ".join(reasons)
    )
    update = {"promote": promote, "reason": reason, "champion_value": old, "test": test}
    return base.model_copy(update={**update, "slices": slices})
