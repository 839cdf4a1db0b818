"""The training flow, wired stage by stage.

load -> validate -> drift -> clean -> split -> features -> train -> evaluate -> register
-> smoke test (fresh process) -> promote (challenger vs champion) -> model card.

It only wires tasks; each stage lives in ``tasks/<stage>.py``. Data travels between tasks as
Parquet files in the run directory, referenced by path.
"""

from __future__ import annotations

from prefect import flow
from pydantic import BaseModel

from tasks.clean import clean_data
from tasks.core.config import Config
from tasks.core.datasets import dataset_name
from tasks.core.run import tracked_run
from tasks.drift import check_drift, profile_training_data
from tasks.evaluate import evaluate_model
from tasks.features import build_features
from tasks.load import load_data
from tasks.model_card import write_model_card
from tasks.promote import promote_model, smoke_test
from tasks.register import register_model
from tasks.split import split_data
from tasks.train import train_baseline, train_network
from tasks.validate import validate_data


class TrainingResult(BaseModel):
    """What one training run produced."""

    run_id: str
    run_dir: str
    model_name: str
    version: str
    promoted: bool
    reason: str
    metrics: dict[str, float]


@flow(name="training", log_prints=True)
def training(config: Config) -> TrainingResult:
    """Train, evaluate and register a model for ``config.dataset``."""
    model_name = config.tracking.model_name or f"mlpipe-{dataset_name(config.dataset)}"
    with tracked_run(config) as run:
        data = load_data(config.dataset, run)
        validated = validate_data(data, config.validation, run, config.dataset.expectations)
        check_drift(validated, config.validation.drift, model_name, run)
        cleaned = clean_data(validated, config.clean, run)
        splits = split_data(cleaned, config.split, config.seed, run)
        features = build_features(splits, config.features, run)
        network = train_network(features, splits, config.train, config.seed, run)
        baseline = train_baseline(features, splits, config.train, config.seed, run)
        evaluation = evaluate_model(
            network, baseline, features, splits, config.promotion.metric, run
        )
        profile_training_data(splits, config.validation.drift, run)
        registration = register_model(network, evaluation, splits, model_name, data.digest, run)
        smoke_test(registration, splits, run)
        decision = promote_model(
            registration, network, evaluation, splits, config.promotion, config.seed, run
        )
        write_model_card(
            registration, decision, evaluation, data, cleaned, splits, network, config, run
        )
    return TrainingResult(
        run_id=run.run_id,
        run_dir=run.run_dir,
        model_name=model_name,
        version=registration.version,
        promoted=decision.promote,
        reason=decision.reason,
        metrics=evaluation.metrics,
    )
