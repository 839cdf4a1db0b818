"""Stage: evaluate network and baseline on the test split; log metrics and plots."""

from __future__ import annotations

from typing import Any

import joblib
import numpy as np
from prefect import task
from pydantic import BaseModel, ConfigDict
from sklearn import metrics as skm

from tasks.core import plots, tracking
from tasks.core.inference import Predictor
from tasks.core.promotion import LOWER_IS_BETTER
from tasks.core.run import RunContext, logger, read_parquet
from tasks.features import Features
from tasks.split import Splits
from tasks.train import TrainedBaseline, TrainedNetwork, encode_target


class Evaluation(BaseModel):
    """Test metrics of the network (``test_*``) and baseline (``baseline_test_*``)."""

    model_config = ConfigDict(frozen=True)

    metrics: dict[str, float]
    primary_metric: str
    primary_value: float
    higher_is_better: bool


def default_primary_metric(task_type: str) -> str:
    """The metric that decides promotion when the config names none."""
    return {"binary": "roc_auc", "multiclass": "accuracy", "regression": "rmse"}[task_type]


def classification_metrics(y_true: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """Accuracy, macro F1, ROC AUC (one-vs-rest macro for multiclass) and log loss.

    Args:
        y_true: Class indices.
        proba: Class probabilities, one column per class.

    Returns:
        The metrics; ROC AUC is left out when the test split lacks a class.
    """
    labels = list(range(proba.shape[1]))
    y_pred = proba.argmax(axis=1)
    out = {
        "accuracy": float(skm.accuracy_score(y_true, y_pred)),
        "macro_f1": float(
            skm.f1_score(y_true, y_pred, average="macro", labels=labels, zero_division=0)
        ),
        "log_loss": float(skm.log_loss(y_true, proba, labels=labels)),
    }
    if len(np.unique(y_true)) == len(labels):
        if len(labels) == 2:
            out["roc_auc"] = float(skm.roc_auc_score(y_true, proba[:, 1]))
        else:
            out["roc_auc"] = float(
                skm.roc_auc_score(y_true, proba, multi_class="ovr", average="macro", labels=labels)
            )
    return out


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """RMSE, MAE and R²."""
    return {
        "rmse": float(skm.root_mean_squared_error(y_true, y_pred)),
        "mae": float(skm.mean_absolute_error(y_true, y_pred)),
        "r2": float(skm.r2_score(y_true, y_pred)),
    }


def _baseline_outputs(model: Any, x: np.ndarray, classify: bool, n_classes: int) -> np.ndarray:
    if not classify:
        return np.asarray(model.predict(x), dtype=np.float64)
    proba = np.zeros((len(x), n_classes))
    proba[:, model.classes_] = model.predict_proba(x).astype(np.float64)
    # float32 inputs give float32 probabilities whose rows miss 1.0 by rounding; renormalise.
    return proba / proba.sum(axis=1, keepdims=True)


@task(name="evaluate")
def evaluate_model(
    network: TrainedNetwork,
    baseline: TrainedBaseline | None,
    features: Features,
    splits: Splits,
    primary_metric: str | None,
    run: RunContext,
) -> Evaluation:
    """Score the served predictor (raw test rows in) and the baseline; log metrics and plots."""
    schema = splits.dataset
    classify = schema.task != "regression"
    test = read_parquet(splits.test)
    predictor = Predictor.load(network.path)
    # Score through the same path serving uses: raw rows -> coercion -> preprocessing -> net.
    outputs = predictor.raw_outputs(predictor.features(test))
    y_true = encode_target(test[schema.target], splits.classes)
    found = (
        classification_metrics(y_true, outputs) if classify else regression_metrics(y_true, outputs)
    )
    metrics = {f"test_{k}": v for k, v in found.items()}
    if baseline is not None:
        x_test = read_parquet(features.test).to_numpy(np.float32)
        n_classes = len(splits.classes or [])
        base = _baseline_outputs(joblib.load(baseline.path), x_test, classify, n_classes)
        base_found = (
            classification_metrics(y_true, base) if classify else regression_metrics(y_true, base)
        )
        metrics.update({f"baseline_test_{k}": v for k, v in base_found.items()})
    tracking.log_metrics(run.run_id, metrics)

    figures = {
        "plots/learning_curves.png": plots.learning_curves(network.history, network.best_epoch)
    }
    if classify:
        labels = list(splits.classes or [])
        figures["plots/confusion_matrix.png"] = plots.confusion_matrix(
            y_true, outputs.argmax(axis=1), labels
        )
        figures["plots/roc_pr_curves.png"] = plots.roc_pr_curves(y_true, outputs, labels)
    else:
        figures["plots/residuals.png"] = plots.residuals(y_true, outputs)
    heatmap = plots.correlation_heatmap(read_parquet(splits.train)[schema.numeric])
    if heatmap is not None:
        figures["plots/correlation_heatmap.png"] = heatmap
    for name, fig in figures.items():
        # Kept in the run directory too: the model card embeds them.
        local = run.path(name)
        local.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(local, dpi=100)
        tracking.log_artifact(run.run_id, local, "plots")

    primary = primary_metric or default_primary_metric(schema.task)
    key = f"test_{primary}"
    if key not in metrics:
        from tasks.core.errors import ConfigError

        raise ConfigError(
            f"promotion.metric '{primary}' is not among: "
            + ", ".join(sorted(k.removeprefix("test_") for k in metrics if k.startswith("test_")))
        )
    logger("evaluate").info(
        "test: %s",
        ", ".join(f"{k}={v:.4f}" for k, v in metrics.items()),
    )
    return Evaluation(
        metrics=metrics,
        primary_metric=key,
        primary_value=metrics[key],
        higher_is_better=primary not in LOWER_IS_BETTER,
    )
