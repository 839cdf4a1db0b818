import numpy as np
import pytest

from mlpipe.config import PromotionConfig
from mlpipe.learn.metrics import metric_fn
from mlpipe.learn.promotion import (
    ChampionEvidence,
    check_thresholds,
    decide,
    mcnemar,
    paired_bootstrap,
    slice_results,
)

CFG = PromotionConfig(resamples=300)


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


def prior(y: np.ndarray) -> np.ndarray:
    share = np.bincount(y, minlength=2) / len(y)
    return np.tile(share, (len(y), 1))


def judge(y, network, *, baseline=None, champion=None, cfg=CFG, metrics=None):
    return decide(
        y, network, trivial=prior(y), baseline=baseline, baseline_kind="linear",
        champion=champion, masks={"class=0": y == 0, "class=1": y == 1},
        metrics=metrics or {}, metric="accuracy", n_classes=2, cfg=cfg, seed=0,
    )  # fmt: skip


def everyone(n: int) -> np.ndarray:
    return np.ones(n, dtype=bool)


def test_bootstrap_supports_a_real_improvement_and_not_noise():
    y, new, old = models()
    fn = metric_fn("accuracy", 2)
    better = paired_bootstrap(y, new, old, "accuracy", 2, seed=1)
    assert better.supports and better.ci_low > 0
    assert better.difference == pytest.approx(fn(y, new) - fn(y, old))
    same = paired_bootstrap(y, new, new, "accuracy", 2, seed=1)
    assert not same.supports and same.difference == 0


def test_bootstrap_is_seeded():
    y, new, old = models()
    a = paired_bootstrap(y, new, old, "accuracy", 2, seed=3)
    b = paired_bootstrap(y, new, old, "accuracy", 2, seed=3)
    assert (a.ci_low, a.ci_high) == (b.ci_low, b.ci_high)


def test_bootstrap_direction_for_lower_is_better():
    rng = np.random.default_rng(0)
    y = rng.normal(size=300)
    good, bad = y + rng.normal(0, 0.1, 300), y + rng.normal(0, 1.0, 300)
    test = paired_bootstrap(y, good, bad, "rmse", None)
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
    results = slice_results(y, onehot(new_pred), old, masks, "accuracy", 2, 0.05)
    assert {r.slice: r.worse for r in results} == {"class=0": True, "class=1": False}


def test_thresholds_for_a_first_model():
    metrics = {"test_accuracy": 0.91, "test_rmse": 3.0}
    assert check_thresholds(metrics, {"accuracy": 0.9}) == []
    assert check_thresholds(metrics, {"accuracy": 0.95}) == ["accuracy 0.9100 < 0.95"]
    assert check_thresholds(metrics, {"rmse": 2.0}) == ["rmse 3.0000 > 2.0"]
    assert check_thresholds(metrics, {"roc_auc": 0.5}) == ["roc_auc not measured"]


def test_a_constant_model_is_never_promoted_even_as_first_version():
    y, _, _ = models()
    constant = prior(y)  # e.g. hidden_layers=[0]-like: predicts the class shares everywhere
    decision = judge(y, constant)
    assert not decision.promote and not decision.eligible
    assert "not significantly better than a trivial predictor" in decision.reason


def test_a_network_worse_than_its_own_baseline_is_not_eligible():
    y, new, old = models()
    decision = judge(y, old, baseline=new)
    assert not decision.promote and not decision.eligible
    assert "significantly worse than the run's own linear baseline" in decision.reason
    tolerant = judge(y, old, baseline=new, cfg=PromotionConfig(resamples=300,
                                                               baseline_tolerance=0.5))  # fmt: skip
    assert tolerant.eligible and tolerant.promote


def test_a_network_tied_with_its_baseline_within_noise_is_eligible():
    y, new, _ = models()
    almost = new.copy()
    wrong = np.flatnonzero(new.argmax(1) == y)[:2]  # two more mistakes in 400 rows
    almost[wrong] = almost[wrong][:, ::-1]
    decision = judge(y, almost, baseline=new)
    assert decision.eligible and decision.promote, decision.reason
    assert decision.baseline_test is not None and decision.baseline_test.ci_low < 0


def test_first_version_uses_thresholds():
    y, new, _ = models()
    failing = judge(y, new, cfg=PromotionConfig(resamples=300, min_metrics={"accuracy": 0.99}),
                    metrics={"test_accuracy": 0.95})  # fmt: skip
    assert not failing.promote and "accuracy 0.9500 < 0.99" in failing.reason
    assert failing.eligible, "sound on its own; only the absolute bar is missed"
    ok = judge(y, new, metrics={"test_accuracy": 0.95})
    assert ok.promote and ok.eligible and ok.champion_version is None


def test_challenger_needs_margin_test_and_slices_on_shared_rows():
    y, new, old = models()
    champion = ChampionEvidence(version="1", shared=everyone(len(y)), outputs=old)
    better = judge(y, new, champion=champion)
    assert better.promote and "supports" in better.reason and better.test.ci_low > 0
    assert better.champion_version == "1" and better.shared_rows == len(y)
    reverse = ChampionEvidence(version="1", shared=everyone(len(y)), outputs=new)
    worse = judge(y, old, champion=reverse)
    assert not worse.promote and "below the margin" in worse.reason
    big_margin = judge(y, new, champion=champion, cfg=PromotionConfig(margin=0.5, resamples=300))
    assert not big_margin.promote and "margin 0.5" in big_margin.reason
    assert "| class=0 |" in better.markdown()


def test_comparison_uses_only_rows_both_versions_held_out():
    y, new, old = models()
    shared = np.zeros(len(y), dtype=bool)
    shared[:200] = True
    # Outside the shared rows the champion would look perfect (rows it trained on): ignored.
    champion = ChampionEvidence(version="3", shared=shared, outputs=old[shared])
    decision = judge(y, new, champion=champion)
    assert decision.shared_rows == 200 and decision.promote
    assert decision.champion_value == pytest.approx(metric_fn("accuracy", 2)(y[:200], old[:200]))


def test_too_few_shared_rows_means_no_promotion():
    y, new, old = models()
    shared = np.zeros(len(y), dtype=bool)
    shared[:10] = True
    champion = ChampionEvidence(version="2", shared=shared, outputs=old[shared])
    decision = judge(y, new, champion=champion)
    assert not decision.promote
    assert "only 10 test rows are held out by both this version and champion v2" in decision.reason


def test_alias_history_table_is_newest_first_and_escapes_reasons():
    from mlpipe.reports.markdown import alias_history

    moves = [
        {"n": 1, "time": "t1", "alias": "champion", "from": None, "to": "1",
         "compared_with": None, "reason": "first version"},
        {"n": 2, "time": "t2", "alias": "champion", "from": "1", "to": "2",
         "compared_with": "1", "reason": "better | <b>bold</b>"},
    ]  # fmt: skip
    rows = [line for line in alias_history("m", moves).splitlines() if line.startswith("| ")]
    assert rows[1].startswith("| 2 | t2 | champion | v1 | v2 | v1 | better \\| &lt;b&gt;")
    assert rows[2] == "| 1 | t1 | champion | - | v1 | - | first version |"
    assert "no alias has been set yet" in alias_history("m", [])
