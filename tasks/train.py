"""Stage: train the network (MLP or small CNN), the scikit-learn baseline and a trivial model."""

from __future__ import annotations

import logging
import time

import joblib
from prefect import task

from mlpipe.config import TrainConfig
from mlpipe.handoff import Features, RunContext, Splits, TrainedModels
from mlpipe.io import tracking
from mlpipe.io.engine import engine_for
from mlpipe.learn.train import EpochCallback, Rows, fit_rows

log = logging.getLogger("mlpipe.train")


def _progress(run: RunContext, max_epochs: int) -> EpochCallback:
    started = time.monotonic()

    def report(row: dict[str, float]) -> None:
        epoch = int(row["epoch"])
        tracking.log_metrics(run.run_id, {k: v for k, v in row.items() if k != "epoch"}, step=epoch)
        if epoch == 1 or epoch % 5 == 0:
            extra = f" val_accuracy={row['val_accuracy']:.4f}" if "val_accuracy" in row else ""
            spent = time.monotonic() - started
            log.info(
                "epoch %d/%d train_loss=%.4f val_loss=%.4f%s (%.0f s, %.1f s/epoch, at most "
                "%.0f s left)",
                epoch,
                max_epochs,
                row["train_loss"],
                row["val_loss"],
                extra,
                spent,
                spent / epoch,
                spent / epoch * (max_epochs - epoch),
            )

    return report


@task(name="train")
def train_models(
    features: Features, splits: Splits, cfg: TrainConfig, seed: int, run: RunContext
) -> TrainedModels:
    """Fit the candidates with the fitted preprocessor; save them; log per-epoch metrics."""
    log.info(
        "training %s%s (max %d epochs, patience %d%s) and a %s baseline",
        cfg.architecture,
        f" {cfg.hidden_layers}" if cfg.architecture == "mlp" else "",
        cfg.max_epochs,
        cfg.patience,
        f", {cfg.workers} ranks" if cfg.workers > 1 else "",
        cfg.baseline,
    )
    fitted = fit_rows(
        Rows.on_disk(features.train),
        Rows.on_disk(features.val),
        joblib.load(features.preprocessor),
        splits.dataset,
        splits.classes,
        cfg,
        seed,
        _progress(run, cfg.max_epochs),
        engine=engine_for(run.execution, run.run_dir) if cfg.workers > 1 else None,
        folder=run.path("ranks"),
    )
    folder = run.path("predictor")
    fitted.predictor.save(folder)
    candidates = run.path("candidates.joblib")
    joblib.dump({"baseline": fitted.baseline, "trivial": fitted.trivial}, candidates)
    tracking.log_metrics(
        run.run_id,
        {
            "best_epoch": fitted.best_epoch,
            "epochs_run": len(fitted.history),
            "train_seconds": fitted.seconds,
            "batch_size": fitted.batch_size,
            "baseline_rows": fitted.baseline_rows,
        },
    )
    log.info(
        "trained %d epochs in %.1fs (batches of %d); best validation loss at epoch %d",
        len(fitted.history),
        fitted.seconds,
        fitted.batch_size,
        fitted.best_epoch,
    )
    return TrainedModels(
        predictor=str(folder),
        history=fitted.history,
        best_epoch=fitted.best_epoch,
        architecture=cfg.architecture,
        seconds=fitted.seconds,
        candidates=str(candidates),
        baseline_kind=cfg.baseline,
    )
