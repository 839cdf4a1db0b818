import itertools

import numpy as np
import pandas as pd
import pytest

from mlpipe.learn.metrics import DEFAULT_PRIMARY, METRICS, Tally, for_task, score, score_all
from mlpipe.packaging import input_example, pip_requirements
from mlpipe.serving.schema import Schema


def test_classification_metrics_match_hand_computed_values():
    y = np.array([0, 1, 1, 0])
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.7, 0.3]])
    m = score_all("binary", y, proba, 2)
    assert m["accuracy"] == 0.75
    assert m["roc_auc"] == 1.0, "every positive scores above every negative"
    assert m["log_loss"] == pytest.approx(-np.mean(np.log([0.9, 0.8, 0.4, 0.7])))


def test_roc_auc_left_out_when_a_class_is_absent():
    proba = np.array([[0.5, 0.3, 0.2], [0.1, 0.8, 0.1]])
    assert "roc_auc" not in score_all("multiclass", np.array([0, 1]), proba, 3)
    assert score("roc_auc", np.array([0, 1]), proba, 3) is None


def test_regression_metrics():
    m = score_all("regression", np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 5.0]), None)
    assert m["mae"] == pytest.approx(2 / 3)
    assert m["rmse"] == pytest.approx(np.sqrt(4 / 3))


def test_one_table_covers_every_task():
    assert DEFAULT_PRIMARY == {"binary": "roc_auc", "multiclass": "accuracy", "regression": "rmse"}
    assert (
        set(for_task("binary"))
        == set(for_task("multiclass"))
        == {
            "accuracy",
            "macro_f1",
            "roc_auc",
            "log_loss",
        }
    )
    assert set(for_task("regression")) == {"rmse", "mae", "r2"}
    assert {name for name, m in METRICS.items() if not m.higher_is_better} == {
        "log_loss",
        "rmse",
        "mae",
    }


def test_input_example_prefers_rows_with_missing_values():
    schema = Schema(name="t", target="y", task="binary", numeric=["n"], categorical=[])
    test = pd.DataFrame({"n": [1.0, 2.0, np.nan, 4.0, 5.0, 6.0, 7.0], "y": [0, 1] * 3 + [0]})
    example = input_example(test, schema)
    assert list(example.columns) == ["n"] and len(example) == 5
    assert example["n"].isna().iloc[0], "a NaN row shows users that missing values are accepted"


def test_pip_requirements_are_exact_pins():
    pins = pip_requirements()
    assert all("==" in p for p in pins)
    assert "torch==2.13.0" in pins, "local CPU wheel version without the +cpu suffix"


def random_outputs(task: str, n: int, seed: int) -> tuple[np.ndarray, np.ndarray, int | None]:
    rng = np.random.default_rng(seed)
    if task == "regression":
        y = rng.normal(10, 3, n)
        return y, y + rng.normal(0, 2, n), None
    k = 2 if task == "binary" else 4
    y = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k)) + 2 * np.eye(k)[y]
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    proba[0] = np.eye(k)[(y[0] + 1) % k]  # a confident mistake: log loss needs the clipping
    return y, proba, k


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_resampled_metrics_equal_scikit_learn_on_the_same_resamples(task: str):
    from mlpipe.learn.metrics import metric_fn, resampled

    y, outputs, k = random_outputs(task, 60, seed=1)
    for name in for_task(task):
        (values,) = resampled(name, y, [outputs], k, resamples=40, seed=7)
        rng = np.random.default_rng(7)
        idx = rng.integers(0, len(y), (40, len(y)))
        fn = metric_fn(name, k)
        for value, rows in zip(values, idx, strict=True):
            try:
                expected = fn(y[rows], outputs[rows])
            except ValueError:
                expected = np.nan
            np.testing.assert_allclose(value, expected, rtol=1e-9, atol=1e-12, err_msg=name)


def test_resampling_is_chunked_and_keeps_the_sequence(monkeypatch: pytest.MonkeyPatch):
    import mlpipe.learn.metrics as metrics

    y, outputs, k = random_outputs("multiclass", 50, seed=2)
    (whole,) = metrics.resampled("accuracy", y, [outputs], k, resamples=30, seed=3)
    monkeypatch.setattr(metrics, "RESAMPLE_BLOCK_CELLS", 50 * 7)  # 7 resamples per block
    (blocked,) = metrics.resampled("accuracy", y, [outputs], k, resamples=30, seed=3)
    # Blocks draw the same stream in the same order: bounded memory, identical resamples.
    np.testing.assert_array_equal(whole, blocked)


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_large_test_sets_use_the_scaled_m_out_of_n_bootstrap(task: str):
    from mlpipe.learn.metrics import metric_fn, resampled

    y, outputs, k = random_outputs(task, 500, seed=4)
    m = 120
    for name in for_task(task):
        fn = metric_fn(name, k)
        (values,) = resampled(name, y, [outputs], k, resamples=25, seed=9, max_rows=m)
        idx = np.random.default_rng(9).integers(0, len(y), (25, m))
        whole = fn(y, outputs)
        for value, rows in zip(values, idx, strict=True):
            try:
                raw = fn(y[rows], outputs[rows])
            except ValueError:
                raw = np.nan
            expected = whole + np.sqrt(m / len(y)) * (raw - whole)
            np.testing.assert_allclose(value, expected, rtol=1e-9, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("name", ["accuracy", "roc_auc", "macro_f1"])
def test_scaled_intervals_have_the_spread_of_a_bootstrap_on_all_rows(name: str):
    from mlpipe.learn.metrics import resampled

    y, outputs, k = random_outputs("multiclass", 8000, seed=5)
    (full,) = resampled(name, y, [outputs], k, resamples=400, seed=1, max_rows=8000)
    (capped,) = resampled(name, y, [outputs], k, resamples=400, seed=2, max_rows=800)
    # Same centre and a spread within sampling noise of 400 resamples (~ +/-15%).
    assert abs(np.median(capped) - np.median(full)) < 0.5 * np.std(full)
    assert 0.75 < np.std(capped) / np.std(full) < 1.33


def test_vectorised_auc_counts_ties_as_half():
    from mlpipe.learn.metrics import metric_fn, resampled

    y = np.array([0, 1, 0, 1, 1, 0, 1, 0] * 5)
    score = np.array([0.2, 0.2, 0.5, 0.5, 0.9, 0.1, 0.5, 0.9] * 5)
    outputs = np.column_stack([1 - score, score])
    (values,) = resampled("roc_auc", y, [outputs], 2, resamples=30, seed=0)
    idx = np.random.default_rng(0).integers(0, len(y), (30, len(y)))
    fn = metric_fn("roc_auc", 2)
    expected = [fn(y[rows], outputs[rows]) for rows in idx]
    np.testing.assert_allclose(values, expected, rtol=1e-12)


def _outputs(task: str, n: int, seed: int) -> tuple[np.ndarray, np.ndarray, int | None]:
    rng = np.random.default_rng(seed)
    if task == "regression":
        y = rng.normal(50, 4, n).astype(np.float32)
        return y, y + rng.normal(0, 1, n), None
    k = 2 if task == "binary" else 4
    y = rng.integers(0, k, n)
    p = rng.dirichlet(np.ones(k), n)
    p[:5] = np.eye(k)[y[:5]]  # certain and right: log loss clips these
    p[5:8] = np.eye(k)[(y[5:8] + 1) % k]  # certain and wrong
    return y, p, k


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
@pytest.mark.parametrize("cuts", [[], [1], [7, 300, 301], list(range(50, 1000, 50))])
def test_tally_over_partitions_gives_the_whole_frame_metrics(task: str, cuts: list[int]):
    y, p, k = _outputs(task, 1000, seed=len(cuts))
    tally = Tally(task, k)
    for a, b in zip([0, *cuts], [*cuts, len(y)], strict=True):
        tally.add(y[a:b], p[a:b])
    got, expected = tally.metrics(), score_all(task, y, p, k)
    assert got.keys() == expected.keys()
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, rel=1e-9, abs=1e-12), name


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_tallies_of_partitions_merged_equal_one_tally_fed_in_order(
    task: str, monkeypatch: pytest.MonkeyPatch
):
    import mlpipe.learn.metrics as metrics

    monkeypatch.setattr(metrics, "AUC_MAX_CELLS", 1200)  # the AUC sample is merged too
    y, p, k = _outputs(task, 3000, seed=4)
    fed, merged = Tally(task, k), Tally(task, k)
    for a, b in itertools.pairwise([0, 7, 1100, 1101, 2500, 3000]):
        fed.add(y[a:b], p[a:b])
        part = Tally(task, k)  # on a worker: knows only where its rows start
        part.add(y[a:b], p[a:b], start=a)
        merged.merge(part)
    assert merged.rows == fed.rows == 3000
    assert merged.auc_rows == fed.auc_rows
    for name, value in fed.metrics().items():
        assert merged.metrics()[name] == pytest.approx(value, rel=1e-12, abs=1e-12), name


def test_tally_leaves_out_what_is_undefined():
    tally = Tally("multiclass", 3)
    tally.add(np.array([0, 1, 0]), np.full((3, 3), 1 / 3))  # class 2 absent: no ROC AUC
    assert "roc_auc" not in tally.metrics() and "accuracy" in tally.metrics()
    assert Tally("binary", 2).metrics() == {}
    constant = Tally("regression", None)
    constant.add(np.array([2.0, 2.0]), np.array([2.0, 2.0]))
    assert constant.metrics()["r2"] == score("r2", np.array([2.0, 2.0]), np.array([2.0, 2.0]), None)


def test_tally_ranks_confident_scores_as_they_are():
    # Probabilities within 3e-8 of 1 tie in float32; the AUC must see them apart.
    rng = np.random.default_rng(7)
    y = rng.integers(0, 2, 4000)
    logit = np.where(y == 1, rng.normal(19, 4, 4000), rng.normal(12, 4, 4000))
    p1 = 1 / (1 + np.exp(-logit))
    p = np.column_stack([1 - p1, p1])
    tally = Tally("binary", 2)
    tally.add(y[:1500], p[:1500])
    tally.add(y[1500:], p[1500:])
    assert tally.metrics()["roc_auc"] == pytest.approx(score("roc_auc", y, p, 2), abs=1e-12)


def test_tally_drops_an_undefined_auc_instead_of_failing():
    p = np.full((4, 3), 1 / 3)
    p[0] = np.nan
    tally = Tally("multiclass", 3)
    tally.add(np.array([0, 1, 2, 0]), p)
    assert "roc_auc" not in tally.metrics() and "accuracy" in tally.metrics()


def test_tally_ranks_a_bounded_sample_of_many_scores(monkeypatch: pytest.MonkeyPatch):
    import mlpipe.learn.metrics as metrics

    monkeypatch.setattr(metrics, "AUC_MAX_CELLS", 3000)
    y, p, k = _outputs("multiclass", 20_000, seed=9)  # 4 classes: 750 rows kept
    tally = Tally("multiclass", k)
    for at in range(0, len(y), 6000):
        tally.add(y[at : at + 6000], p[at : at + 6000])
    assert tally.auc_rows == 750 and tally.rows == 20_000
    assert tally.metrics()["accuracy"] == score("accuracy", y, p, k)  # still exact
    assert tally.metrics()["roc_auc"] == pytest.approx(score("roc_auc", y, p, k), abs=0.05)


def test_metrics_get_grouped_names_in_mlflow():
    from mlpipe.io.tracking import metric_key

    assert metric_key("test_accuracy") == "test/accuracy"
    assert metric_key("baseline_test_rmse") == "baseline/rmse"
    assert metric_key("trivial_test_log_loss") == "trivial/log_loss"
    assert metric_key("train_loss") == "train/loss"
    assert metric_key("val_accuracy") == "val/accuracy"
    assert metric_key("clean_dropped_duplicate") == "clean/dropped_duplicate"
    assert metric_key("rows_quarantined") == "rows/quarantined"
    assert metric_key("best_epoch") == "train/best_epoch"
    assert metric_key("test_") == "test_", "a bare prefix is left alone"
    assert metric_key("custom") == "custom"


def test_plots_say_what_they_show():
    import numpy as np
    import pandas as pd

    from mlpipe.reports import plots

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(200, 64)), columns=[f"p{i}" for i in range(64)])
    frame[["p0", "p1", "p2"]] = 0.0  # constant pixels, as at the digits' border
    title = plots.correlation_heatmap(frame).axes[0].get_title()
    assert title == (
        "Correlation (train): 40 of 64 numeric features, the 40 with the highest variance; "
        "3 constant left out"
    )
    small = plots.correlation_heatmap(frame[["p0", "p5", "p6"]]).axes[0].get_title()
    assert small == "Correlation (train): 2 of 3 numeric features; 1 constant left out"

    y = rng.integers(0, 3, 300)
    proba = rng.dirichlet(np.ones(3), 300)
    roc, pr = plots.roc_pr_curves(y, proba, ["a", "b", "c"]).axes[:2]
    assert "Positive label" not in roc.get_xlabel() + pr.get_xlabel() + pr.get_ylabel()
    assert roc.get_title() == "ROC (test, one-vs-rest per class)"
    binary = plots.roc_pr_curves(y % 2, proba[:, :2], ["no", "yes"]).axes[0].get_title()
    assert binary == "ROC (test, positive class: yes)"
