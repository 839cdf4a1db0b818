"""Stage: smoke-test the new version in a fresh process, then decide `champion` on evidence."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from prefect import task

from tasks.core import tracking
from tasks.core.config import PromotionConfig
from tasks.core.errors import MlpipeError
from tasks.core.inference import Predictor
from tasks.core.promotion import (
    LOWER_IS_BETTER,
    PromotionDecision,
    check_thresholds,
    mcnemar,
    metric_fn,
    paired_bootstrap,
    slice_masks,
    slice_results,
)
from tasks.core.run import RunContext, logger, read_parquet, write_parquet
from tasks.core.smoke import run_in_fresh_process
from tasks.evaluate import Evaluation
from tasks.register import Registration
from tasks.split import Splits
from tasks.train import TrainedNetwork, encode_target
from tasks.validate import publish_prefect_markdown

SMOKE_ROWS = 50


class SmokeTestError(MlpipeError):
    """The registered model could not be loaded and used in a fresh process."""


def champion_outputs(model_name: str, rows: pd.DataFrame, classes: list[Any] | None) -> np.ndarray:
    """The current champion's outputs on ``rows``: probabilities in ``classes`` order."""
    import mlflow

    out = mlflow.pyfunc.load_model(f"models:/{model_name}@{tracking.CHAMPION}").predict(rows)
    if classes is None:
        return out["prediction"].to_numpy(dtype=np.float64)
    columns = [f"proba_{c}" for c in classes]
    proba = np.column_stack(
        [out[c].to_numpy(dtype=np.float64) if c in out else np.zeros(len(out)) for c in columns]
    )
    return proba / np.clip(proba.sum(axis=1, keepdims=True), 1e-12, None)


def decide(
    y: np.ndarray,
    challenger: np.ndarray,
    champion: np.ndarray | None,
    champion_version: str | None,
    masks: dict[str, np.ndarray],
    metrics: dict[str, float],
    metric: str,
    n_classes: int | None,
    cfg: PromotionConfig,
    seed: int,
) -> PromotionDecision:
    """The promotion decision (pure): thresholds for a first model, evidence otherwise."""
    fn = metric_fn(metric, n_classes)
    higher = metric not in LOWER_IS_BETTER
    value = fn(y, challenger)
    if champion is None:
        failures = check_thresholds(metrics, cfg.min_metrics)
        if failures:
            reason = "first version fails absolute thresholds: " + "; ".join(failures)
        elif cfg.min_metrics:
            reason = "first version: passes the absolute thresholds"
        else:
            reason = "first version: no champion and no absolute thresholds configured"
        return PromotionDecision(promote=not failures, reason=reason, metric=metric,
                                 challenger_value=value, thresholds=cfg.min_metrics)  # fmt: skip
    old = fn(y, champion)
    gain = (value - old) if higher else (old - value)
    if cfg.test == "mcnemar" and metric == "accuracy" and n_classes:
        test = mcnemar(y, challenger, champion, alpha=1 - cfg.confidence)
    else:
        test = paired_bootstrap(y, challenger, champion, fn, higher, resamples=cfg.resamples,
                                seed=seed, level=cfg.confidence)  # fmt: skip
    slices = slice_results(y, challenger, champion, masks, fn, higher, cfg.slice_tolerance)
    worse = [s.slice for s in slices if s.worse]
    reasons = []
    if gain < cfg.margin or gain <= 0:
        reasons.append(f"{metric} gain {gain:+.4f} is below the margin {cfg.margin}")
    if not test.supports:
        reasons.append(f"the {test.method} does not support an improvement")
    if worse:
        reasons.append(f"slices worse by more than {cfg.slice_tolerance}: {', '.join(worse)}")
    promote = not reasons
    reason = (
        f"better than champion v{champion_version}: {metric} {value:.4f} vs {old:.4f}, "
        f"{test.method} supports it, no slice worse than {cfg.slice_tolerance}"
        if promote else "not promoted: " + "; ".join(reasons)
    )  # fmt: skip
    return PromotionDecision(promote=promote, reason=reason, metric=metric, challenger_value=value,
                             champion_value=old, champion_version=champion_version,
                             margin=cfg.margin, test=test, slices=slices)  # fmt: skip


@task(name="smoke-test")
def smoke_test(registration: Registration, splits: Splits, run: RunContext) -> str:
    """Load the version by its ``models:/`` URI in a fresh process and score sample rows."""
    test = read_parquet(splits.test)
    rows = pd.concat(
        [read_parquet(registration.input_example),
         test[splits.dataset.features].head(SMOKE_ROWS)], ignore_index=True,
    )  # fmt: skip
    path = write_parquet(rows, run.path("smoke_rows.parquet"))
    ok, detail = run_in_fresh_process(registration.model_uri, path, run.tracking_uri)
    if not ok:
        tracking.set_version_tags(registration.model_name, registration.version, {
            "mlpipe.decision": "failed", "mlpipe.decision.reason": f"smoke test: {detail[-500:]}",
        })  # fmt: skip
        raise SmokeTestError(
            f"{registration.model_uri} failed to load and predict in a fresh process: "
            + detail.splitlines()[-1][:300]
        )
    logger("promote").info("smoke test passed in a fresh process: %s", detail)
    return detail


@task(name="promote")
def promote_model(
    registration: Registration,
    network: TrainedNetwork,
    evaluation: Evaluation,
    splits: Splits,
    cfg: PromotionConfig,
    seed: int,
    run: RunContext,
) -> PromotionDecision:
    """Score challenger and champion on the same test rows; move `champion` only on evidence."""
    schema = splits.dataset
    test = read_parquet(splits.test)
    y = encode_target(test[schema.target], splits.classes)
    predictor = Predictor.load(network.path)
    challenger = predictor.raw_outputs(predictor.features(test))
    current = tracking.champion(registration.model_name)
    champion = None
    if current is not None and current.version != registration.version:
        champion = champion_outputs(registration.model_name, test[schema.features], splits.classes)
    columns = [s for s in cfg.slices if s != "class"]
    masks = slice_masks(test, y, splits.classes if "class" in cfg.slices else None, columns)
    metric = evaluation.primary_metric.removeprefix("test_")
    decision = decide(
        y, challenger, champion, current.version if current else None, masks,
        evaluation.metrics, metric, len(splits.classes) if splits.classes else None, cfg, seed,
    )  # fmt: skip
    name, version = registration.model_name, registration.version
    tags = {
        "mlpipe.decision": "promoted" if decision.promote else "not promoted",
        "mlpipe.decision.reason": decision.reason[:5000],
    }
    if decision.test is not None:
        tags["mlpipe.decision.test"] = decision.test.method
        tags["mlpipe.decision.difference"] = f"{decision.test.difference:+.6f}"
        if decision.test.ci_low is not None:
            tags["mlpipe.decision.ci"] = (
                f"[{decision.test.ci_low:+.6f}, {decision.test.ci_high:+.6f}]"
            )
        if decision.test.p_value is not None:
            tags["mlpipe.decision.p_value"] = f"{decision.test.p_value:.6g}"
    tracking.set_version_tags(name, version, tags)
    tracking.set_tags(run.run_id, {k: v for k, v in tags.items() if k != "mlpipe.decision.reason"})
    tracking.log_dict(run.run_id, decision.model_dump(mode="json"), "registry/decision.json")
    publish_prefect_markdown(decision.markdown(), f"promotion-{name}")
    if decision.promote:
        tracking.move_alias(name, version, decision.reason, run.run_id)
    logger("promote").info("%s v%s: %s", name, version, decision.reason)
    return decision
