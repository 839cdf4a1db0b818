import numpy as np
import pytest

from tasks.core.config import PromotionConfig
from tasks.core.promotion import (
    check_thresholds,
    mcnemar,
    metric_fn,
    paired_bootstrap,
    slice_results,
)
from tasks.promote import decide


def onehot(pred: np.ndarray, k: int = 2) -> np.ndarray:
    out = np.full((len(pred), k), 0.05 / (k - 1))
    out[np.arange(len(pred)), pred] = 0.95
    return out


def models(n: int = 400, new_acc: float = 0.95, old_acc: float = 0.80, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    new = np.where(rng.random(n) < new_acc, y, 1 - y)
    old = np.where(rng.random(n) < old_acc, y, 1 - y)
    return y, onehot(new), onehot(old)


def test_bootstrap_supports_a_real_improvement_and_not_noise():
    y, new, old = models()
    fn = metric_fn("accuracy", 2)
    better = paired_bootstrap(y, new, old, fn, higher_is_better=True, seed=1)
    assert (
        better.supports
        and better.ci_low > 0
        and better.difference == pytest.approx(fn(y, new) - fn(y, old))
    )
    same = paired_bootstrap(y, new, new, fn, higher_is_better=True, seed=1)
    assert not same.supports and same.difference == 0


def test_bootstrap_is_seeded():
    y, new, old = models()
    fn = metric_fn("accuracy", 2)
    a = paired_bootstrap(y, new, old, fn, True, seed=3)
    b = paired_bootstrap(y, new, old, fn, True, seed=3)
    assert (a.ci_low, a.ci_high) == (b.ci_low, b.ci_high)


def test_bootstrap_direction_for_lower_is_better():
    rng = np.random.default_rng(0)
    y = rng.normal(size=300)
    good, bad = y + rng.normal(0, 0.1, 300), y + rng.normal(0, 1.0, 300)
    test = paired_bootstrap(y, good, bad, metric_fn("rmse", None), higher_is_better=False)
    assert test.supports and test.difference > 0, "lower RMSE is an improvement"


def test_mcnemar_counts_discordant_rows():
    y, new, old = models()
    test = mcnemar(y, new, old)
    assert test.supports and test.p_value < 0.001
    assert mcnemar(y, old, new).supports is False


def test_slices_flag_a_class_that_gets_worse():
    y = np.array([0] * 50 + [1] * 50)
    old = onehot(y.copy())
    new_pred = y.copy()
    new_pred[:10] = 1  # class 0 loses 20% accuracy
    masks = {"class=0": y == 0, "class=1": y == 1}
    results = slice_results(y, onehot(new_pred), old, masks, metric_fn("accuracy", 2), True, 0.05)
    worse = {r.slice: r.worse for r in results}
    assert worse == {"class=0": True, "class=1": False}


def test_thresholds_for_a_first_model():
    metrics = {"test_accuracy": 0.91, "test_rmse": 3.0}
    assert check_thresholds(metrics, {"accuracy": 0.9}) == []
    assert check_thresholds(metrics, {"accuracy": 0.95}) == ["accuracy 0.9100 < 0.95"]
    assert check_thresholds(metrics, {"rmse": 2.0}) == ["rmse 3.0000 > 2.0"]
    assert check_thresholds(metrics, {"roc_auc": 0.5}) == ["roc_auc not measured"]


def test_decide_first_version_uses_thresholds():
    y, new, _ = models()
    cfg = PromotionConfig(min_metrics={"accuracy": 0.99})
    decision = decide(y, new, None, None, {}, {"test_accuracy": 0.95}, "accuracy", 2, cfg, 0)
    assert not decision.promote and "fails absolute thresholds" in decision.reason
    ok = decide(
        y, new, None, None, {}, {"test_accuracy": 0.95}, "accuracy", 2, PromotionConfig(), 0
    )
    assert ok.promote


def test_decide_needs_margin_test_and_slices():
    y, new, old = models()
    masks = {"class=0": y == 0, "class=1": y == 1}
    cfg = PromotionConfig(resamples=300)
    better = decide(y, new, old, "1", masks, {}, "accuracy", 2, cfg, 0)
    assert better.promote and "supports" in better.reason and better.test.ci_low > 0
    worse = decide(y, old, new, "1", masks, {}, "accuracy", 2, cfg, 0)
    assert not worse.promote and "below the margin" in worse.reason
    big_margin = decide(y, new, old, "1", masks, {}, "accuracy", 2,
                        PromotionConfig(margin=0.5, resamples=300), 0)  # fmt: skip
    assert not big_margin.promote and "margin 0.5" in big_margin.reason
    assert "| class=0 |" in better.markdown()
