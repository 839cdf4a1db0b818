"""Stage: evaluate every candidate on the test split once; log metrics, plots and the evidence."""

from __future__ import annotations

import logging

import joblib
from prefect import task

from mlpipe.data.sampling import RowSample
from mlpipe.errors import DataError
from mlpipe.handoff import Evaluation, Evidence, RunContext, Splits, TrainedModels
from mlpipe.io import tracking
from mlpipe.io.engine import engine_for, starts
from mlpipe.io.tables import iter_partitions, write_parquet
from mlpipe.learn.metrics import DEFAULT_PRIMARY, EVIDENCE_ROWS, Tally, higher_is_better
from mlpipe.learn.promotion import slice_masks
from mlpipe.learn.train import scored_partition
from mlpipe.orchestration import publish_markdown
from mlpipe.reports import plots
from mlpipe.serving.predictor import Predictor

log = logging.getLogger("mlpipe.evaluate")
EVIDENCE_SEED = 2  # the evidence sample's keys differ from the ingest sample's


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
    predictor = Predictor.load(models.predictor)
    candidates = joblib.load(models.candidates)
    tallies: dict[str, Tally] = {}
    # Metrics are exact over every test row; the evidence (paired tests, intervals, slices,
    # plots) is a uniform sample of at most EVIDENCE_ROWS of them.
    sample = RowSample(EVIDENCE_ROWS, seed=EVIDENCE_SEED)
    engine = engine_for(run.execution, run.run_dir)
    for part_tallies, part_sample in engine.summarise(
        scored_partition, splits.test, predictor, candidates, schema, splits.classes,
        (EVIDENCE_ROWS, EVIDENCE_SEED), each=starts(splits.test), progress="evaluation",
    ):  # fmt: skip
        for name, tally in part_tallies.items():
            if name in tallies:
                tallies[name].merge(tally)
            else:
                tallies[name] = tally
        sample.merge(part_sample)
    metrics: dict[str, float] = {}
    for name, prefix in (
        ("network", "test_"),
        ("baseline", "baseline_test_"),
        ("trivial", "trivial_test_"),
    ):
        if name in tallies:
            metrics.update({f"{prefix}{k}": v for k, v in tallies[name].metrics().items()})
    tracking.log_metrics(run.run_id, metrics)
    test = sample.parts["rows"]
    y = sample.parts["y"]
    outputs = {k[4:]: v for k, v in sample.parts.items() if k.startswith("out:")}
    counted: dict[str, float] = {"evidence_rows": len(y)}
    if classify:
        counted["roc_auc_rows"] = tallies["network"].auc_rows
    tracking.log_metrics(run.run_id, counted)
    if not sample.complete:
        log.info(
            "metrics on all %d test rows; evidence on a uniform sample of %d", sample.rows, len(y)
        )

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
    evidence_rows = write_parquet(test, run.path("evidence_rows.parquet"))
    primary = primary_metric or DEFAULT_PRIMARY[schema.task]
    key = f"test_{primary}"
    if key not in metrics:
        raise DataError(
            f"promotion.metric {primary} is undefined on this test split (a class without "
            "test rows?); choose another metric or add rows"
        )
    shown = {k: v for k, v in metrics.items() if k.startswith(("test_", "baseline_"))}
    log.info("test: %s", ", ".join(f"{k}={v:.4f}" for k, v in shown.items()))
    table = ["| metric | value |", "|---|---|", *(f"| {k} | {v:.4f} |" for k, v in shown.items())]
    publish_markdown(
        "\n".join(
            [f"# Evaluation of {schema.name}: network and baseline on the test split", "", *table]
        ),
        f"evaluation-{schema.name}",
        "mlpipe evaluation",
    )
    return Evaluation(
        metrics=metrics,
        primary_metric=key,
        primary_value=metrics[key],
        higher_is_better=higher_is_better(primary),
        evidence=evidence,
        evidence_rows=evidence_rows,
        test_rows=sample.rows,
        baseline_kind=None if models.baseline_kind == "none" else models.baseline_kind,
    )
