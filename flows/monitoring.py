"""The monitoring flow: assess a new batch and retrain on drift (cooldown, de-duplicated)."""

from __future__ import annotations

from prefect import flow

from mlpipe.config import Config
from mlpipe.handoff import TriggerDecision
from mlpipe.io import tracking
from mlpipe.orchestration import prepare_run_process
from tasks.monitor import assess_batch, trigger_retraining
from tasks.recover import recover_abandoned


@flow(name="monitoring", log_prints=True, on_running=[prepare_run_process])
def monitoring(config: Config, data: str) -> TriggerDecision:
    """Validate ``data``, measure drift against the champion, maybe trigger retraining."""
    recover_abandoned(config)
    with tracking.tracked_run(
        "mlpipe-monitoring", f"monitor-{config.dataset.source}", {"mlpipe.monitor.data": data}
    ) as run_id:
        assessment = assess_batch(config, data, run_id)
        tracking.log_metrics(
            run_id, {"rows": assessment.rows, "drift_columns": len(assessment.drifted)}
        )
        return trigger_retraining(assessment, config, run_id)
