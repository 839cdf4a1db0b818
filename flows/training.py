"""The training flow, wired stage by stage.

recover -> load (+ pre-flight) -> validate -> drift -> clean -> split -> features -> train
-> evaluate -> profile -> register -> smoke test (fresh process) -> promote -> model card.

It only wires tasks; each stage lives in ``tasks/<stage>.py``, its logic in ``mlpipe``. Data
travels between tasks as Parquet files in the run directory, referenced by path.
"""

from __future__ import annotations

from prefect import flow
from prefect.states import Completed

from mlpipe.config import Config
from mlpipe.data.datasets import model_name
from mlpipe.handoff import LoadedData, TrainingResult
from mlpipe.io.runs import training_run
from mlpipe.orchestration import flow_run_id, prepare_run_process
from tasks.clean import clean_data
from tasks.drift import check_drift, profile_training_data
from tasks.evaluate import evaluate_models
from tasks.features import build_features
from tasks.load import load_data
from tasks.model_card import write_model_card
from tasks.promote import promote_model, smoke_test
from tasks.recover import recover_abandoned
from tasks.register import register_model
from tasks.split import split_data
from tasks.train import train_models
from tasks.validate import validate_data


@flow(name="training", log_prints=True, on_running=[prepare_run_process])
def training(
    config: Config, staged: LoadedData | None = None, window: bool = False
) -> TrainingResult:
    """Train, evaluate and register a model for ``config.dataset``; promote it on evidence.

    ``staged``: the data as the CLI's pre-flight copied and resolved it (else read here).
    ``window``: train on ``schedule.window`` (the source and the batches monitoring
    accepted), as deployment-started runs do.
    """
    name = model_name(config.dataset, config.tracking.model_name)
    recover_abandoned(config)
    with training_run(config, flow_run_id()) as run:
        data = load_data(config, run, staged, window)
        validated = validate_data(data, config.validation, run, config.dataset.expectations)
        check_drift(validated, config.validation.drift, name, run)
        cleaned = clean_data(validated, config.clean, config.split.key, run)
        splits = split_data(cleaned, config.split, run)
        features = build_features(splits, config.features, run)
        models = train_models(features, splits, config.train, config.seed, run)
        evaluation = evaluate_models(
            models, splits, config.promotion.metric, config.promotion.slices, run
        )
        profile_training_data(splits, config.validation.drift, run)
        registration = register_model(models, evaluation, splits, name, data, run)
        smoke_test(registration, splits, run)
        decision = promote_model(
            registration, evaluation, splits, config.promotion, config.seed, run
        )
        write_model_card(
            registration, decision, evaluation, data, validated, cleaned, splits, config, run
        )
    result = TrainingResult(
        run_id=run.run_id,
        run_dir=run.run_dir,
        model_name=name,
        version=registration.version,
        promoted=decision.promote,
        eligible=decision.eligible,
        reason=decision.reason,
        metrics=evaluation.metrics,
    )
    # The decision in the run's final state (Prefect UI, `retrain --wait`); a caller of the
    # flow still gets the result itself.
    return Completed(message=result.summary(), data=result)  # type: ignore[return-value]
