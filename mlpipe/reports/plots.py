"""Evaluation and data plots as matplotlib figures (arrays in, Figure out; nothing saved here)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure


def _figure(width: float = 6.0, height: float = 5.0, ncols: int = 1) -> tuple[Figure, Any]:
    # Figure() without pyplot: no global state, no GUI backend, safe in threads.
    fig = Figure(figsize=(width * ncols, height), layout="constrained")
    axes = fig.subplots(1, ncols)
    return fig, axes


def save(figure: Figure, path: str | Path) -> Path:
    """Render a figure to a PNG file (its folder created) and return the path.

    Labels in scripts the default font lacks (CJK class names, emoji) draw as boxes; the plot
    is still useful, so matplotlib's per-glyph warnings are not passed on to the user.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Glyph \d+ .* missing from font")
        warnings.filterwarnings("ignore", message=r"Matplotlib currently does not support")
        figure.savefig(target, dpi=100)
    return target


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, labels: list[Any]) -> Figure:
    """Confusion matrix of class indices, labelled with the class names."""
    from sklearn.metrics import ConfusionMatrixDisplay

    fig, ax = _figure(6, 5.5)
    ConfusionMatrixDisplay.from_predictions(
        y_true,
        y_pred,
        labels=list(range(len(labels))),
        display_labels=[str(c) for c in labels],
        ax=ax,
        colorbar=False,
    )
    ax.set_title("Confusion matrix (test)")
    return fig


def roc_pr_curves(y_true: np.ndarray, proba: np.ndarray, labels: list[Any]) -> Figure:
    """ROC and precision-recall curves; one-vs-rest per class for multiclass."""
    from sklearn.metrics import PrecisionRecallDisplay, RocCurveDisplay

    fig, (roc_ax, pr_ax) = _figure(5.5, 5, ncols=2)
    positives = [1] if len(labels) == 2 else list(range(len(labels)))
    for k in positives:
        truth = (y_true == k).astype(int)
        if truth.min() == truth.max():
            continue  # class absent from the test split: no curve to draw
        name = str(labels[k])
        RocCurveDisplay.from_predictions(truth, proba[:, k], name=name, ax=roc_ax)
        PrecisionRecallDisplay.from_predictions(truth, proba[:, k], name=name, ax=pr_ax)
    # sklearn labels the axes "(Positive label: 1)": the 0/1 of each one-vs-rest curve.
    which = f"positive class: {labels[1]}" if len(labels) == 2 else "one-vs-rest per class"
    roc_ax.set_title(f"ROC (test, {which})", fontsize="small")
    roc_ax.set_xlabel("False positive rate")
    roc_ax.set_ylabel("True positive rate")
    pr_ax.set_title(f"Precision-recall (test, {which})", fontsize="small")
    pr_ax.set_xlabel("Recall")
    pr_ax.set_ylabel("Precision")
    for ax in (roc_ax, pr_ax):
        ax.legend(fontsize="x-small", loc="lower right" if ax is roc_ax else "lower left")
    return fig


def residuals(y_true: np.ndarray, y_pred: np.ndarray) -> Figure:
    """Actual-vs-predicted and residuals-vs-predicted for regression."""
    from sklearn.metrics import PredictionErrorDisplay

    fig, (a, b) = _figure(5, 5, ncols=2)
    PredictionErrorDisplay.from_predictions(y_true, y_pred, kind="actual_vs_predicted", ax=a)
    PredictionErrorDisplay.from_predictions(y_true, y_pred, kind="residual_vs_predicted", ax=b)
    a.set_title("Actual vs predicted (test)")
    b.set_title("Residuals (test)")
    return fig


def learning_curves(history: list[dict[str, float]], best_epoch: int) -> Figure:
    """Loss (and accuracy when present) per epoch for train and validation."""
    frame = pd.DataFrame(history)
    has_acc = "val_accuracy" in frame
    fig, axes = _figure(5, 4, ncols=2 if has_acc else 1)
    axes = np.atleast_1d(axes)
    axes[0].plot(frame["epoch"], frame["train_loss"], label="train")
    axes[0].plot(frame["epoch"], frame["val_loss"], label="validation")
    axes[0].set(xlabel="epoch", ylabel="loss", title="Loss")
    if has_acc:
        axes[1].plot(frame["epoch"], frame["train_accuracy"], label="train")
        axes[1].plot(frame["epoch"], frame["val_accuracy"], label="validation")
        axes[1].set(xlabel="epoch", ylabel="accuracy", title="Accuracy")
    for ax in axes:
        ax.axvline(best_epoch, color="grey", linestyle="--", linewidth=1, label="best epoch")
        ax.legend()
    return fig


def drift_bars(
    columns: list[str], psi: list[float], drifted: list[bool], threshold: float
) -> Figure:
    """PSI per column against the threshold; drifted columns in red."""
    fig, ax = _figure(7, 0.6 + 0.35 * max(len(columns), 1))
    colours = ["#cf222e" if d else "#57606a" for d in drifted]
    ax.barh(columns, psi, color=colours)
    ax.axvline(
        threshold, color="black", linestyle="--", linewidth=1, label=f"threshold {threshold}"
    )
    ax.set(xlabel="population stability index (PSI)", title="Drift against the champion")
    ax.invert_yaxis()
    ax.legend()
    return fig


# Rows a plot looks at, at most (evenly spread): a picture needs no more, and its cost stays flat.
PLOT_MAX_ROWS = 100_000


def correlation_heatmap(frame: pd.DataFrame, max_columns: int = 40) -> Figure | None:
    """Pearson correlation of the numeric columns (highest-variance ones when there are many).

    Computed on at most :data:`PLOT_MAX_ROWS` rows, evenly spread over the frame.
    """
    if len(frame) > PLOT_MAX_ROWS:
        frame = frame.iloc[np.linspace(0, len(frame) - 1, PLOT_MAX_ROWS).astype(np.int64)]
    numeric = frame.select_dtypes("number")
    total = numeric.shape[1]
    numeric = numeric.loc[:, numeric.std() > 0]
    constant = total - numeric.shape[1]
    if numeric.shape[1] < 2:
        return None
    if numeric.shape[1] > max_columns:
        keep = numeric.var().sort_values(ascending=False).index[:max_columns]
        numeric = numeric[list(keep)]
    corr = numeric.corr()
    # Say what is left out: a reader must not take 40 columns for all 64.
    shown = f"{len(corr)} of {total} numeric features"
    if len(corr) + constant < total:
        shown += f", the {len(corr)} with the highest variance"
    if constant:
        shown += f"; {constant} constant left out"
    size = min(4 + 0.25 * len(corr), 14)
    fig, ax = _figure(size, size * 0.85)
    image = ax.imshow(corr.to_numpy(), cmap="RdBu_r", vmin=-1, vmax=1)
    ax.set_xticks(range(len(corr)), [str(c) for c in corr.columns], rotation=90, fontsize=7)
    ax.set_yticks(range(len(corr)), [str(c) for c in corr.index], fontsize=7)
    ax.set_title(f"Correlation (train): {shown}", fontsize="small")
    fig.colorbar(image, ax=ax, shrink=0.8)
    return fig
