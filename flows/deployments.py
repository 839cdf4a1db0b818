"""`mlpipe deploy`: serve the training, batch-prediction and monitoring deployments."""

from __future__ import annotations

from prefect import serve
from prefect.client.schemas.schedules import CronSchedule

from flows.batch_predict import batch_predict
from flows.monitoring import monitoring
from flows.training import training
from mlpipe.config import Config


def build_deployments(config: Config) -> list:
    """The three deployments, with typed parameters (a run form in the Prefect UI)."""
    params = config.model_dump(mode="json")
    sched = config.schedule
    train_schedules = [CronSchedule(cron=sched.cron, timezone=sched.timezone)] if sched.cron else []
    deployments = [
        # One training run at a time: two runs judged against the same champion would race
        # for the alias. Further runs wait for the slot.
        training.to_deployment(
            name="mlpipe-training",
            schedules=train_schedules,
            # Scheduled and triggered runs learn from the batches monitoring accepted.
            parameters={"config": params, "window": True},
            tags=["mlpipe"],
            concurrency_limit=1,
            description="Validate, train, evaluate and register a model.",
        ),
        batch_predict.to_deployment(
            name="mlpipe-batch-predict",
            tags=["mlpipe"],
            description="Batch predictions from the champion.",
        ),
    ]
    monitor_schedules = []
    if sched.monitor_cron and sched.monitor_data:
        monitor_schedules = [CronSchedule(cron=sched.monitor_cron, timezone=sched.timezone)]
    monitor_params: dict[str, object] = {"config": params}
    if sched.monitor_data:
        monitor_params["data"] = sched.monitor_data
    deployments.append(
        monitoring.to_deployment(
            name="mlpipe-monitoring",
            schedules=monitor_schedules,
            parameters=monitor_params,
            tags=["mlpipe"],
            description="Validate a new batch; retrain on drift.",
        )
    )
    return deployments


def serve_deployments(config: Config) -> None:
    """Register and serve the deployments until Ctrl-C."""
    serve(*build_deployments(config))
