"""Stage: evaluate every candidate on the test split once; log metrics, plots and the evidence."""

from __future__ import annotations

import logging

import joblib
from prefect import task

from mlpipe.errors import DataError
from mlpipe.handoff import Evaluation, Evidence, RunContext, Splits, TrainedModels
from mlpipe.io import tracking
from mlpipe.io.tables import iter_partitions, read_parquet
from mlpipe.learn.metrics import DEFAULT_PRIMARY, higher_is_better, score_all
from mlpipe.learn.promotion import slice_masks
from mlpipe.learn.train import candidate_outputs, encode_target
from mlpipe.reports import plots
from mlpipe.serving.predictor import Predictor

log = logging.getLogger("mlpipe.evaluate")


@task(name="evaluate")
def evaluate_models(
    models: TrainedModels,
    splits: Splits,
    primary_metric: str | None,
    slices: list[str],
    run: RunContext,
) -> Evaluation:
    """Score the served predictor (raw test rows in), the baseline and the trivial model."""
    schema = splits.dataset
    classify = schema.task != "regression"
    test = read_parquet(splits.test)
    predictor = Predictor.load(models.predictor)
    candidates = joblib.load(models.candidates)
    # The network is scored through the path serving uses: raw rows -> coercion -> net.
    outputs = candidate_outputs(predictor, candidates["baseline"], candidates["trivial"], test)
    y = encode_target(test[schema.target], splits.classes)
    n_classes = len(splits.classes) if splits.classes else None
    metrics: dict[str, float] = {}
    for name, prefix in (
        ("network", "test_"),
        ("baseline", "baseline_test_"),
        ("trivial", "trivial_test_"),
    ):
        if name in outputs:
            found = score_all(schema.task, y, outputs[name], n_classes)
            metrics.update({f"{prefix}{k}": v for k, v in found.items()})
    tracking.log_metrics(run.run_id, metrics)

    figures = {"learning_curves.png": plots.learning_curves(models.history, models.best_epoch)}
    net = outputs["network"]
    if classify:
        labels = list(splits.classes or [])
        figures["confusion_matrix.png"] = plots.confusion_matrix(y, net.argmax(axis=1), labels)
        figures["roc_pr_curves.png"] = plots.roc_pr_curves(y, net, labels)
    else:
        figures["residuals.png"] = plots.residuals(y, net)
    # The first training partition is a uniform sample of the rows (scattered by hash).
    heatmap = plots.correlation_heatmap(next(iter_partitions(splits.train, schema.numeric)))
    if heatmap is not None:
        figures["correlation_heatmap.png"] = heatmap
    for name, fig in figures.items():
        # Kept in the run directory too: the model card embeds them.
        local = plots.save(fig, run.path(f"plots/{name}"))
        tracking.log_artifact(run.run_id, local, "plots")

    columns = [s for s in slices if s != "class"]
    masks = slice_masks(test, y, splits.classes if "class" in slices else None, columns)
    evidence = Evidence(y=y, outputs=outputs, masks=masks).save(run.path("evidence.npz"))
    primary = primary_metric or DEFAULT_PRIMARY[schema.task]
    key = f"test_{primary}"
    if key not in metrics:
        raise DataError(
            f"promotion.metric {primary} is undefined on this test split (a class without "
            "test rows?); choose another metric or add rows"
        )
    log.info(
        "test: %s",
        ", ".join(
            f"{k}={v:.4f}" for k, v in metrics.items() if k.startswith(("test_", "baseline_"))
        ),
    )
    return Evaluation(
        metrics=metrics,
        primary_metric=key,
        primary_value=metrics[key],
        higher_is_better=higher_is_better(primary),
        evidence=evidence,
        baseline_kind=None if models.baseline_kind == "none" else models.baseline_kind,
    )
