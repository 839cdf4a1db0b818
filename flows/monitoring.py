"""The monitoring flow: assess a new batch and retrain on drift (cooldown, de-duplicated)."""

from __future__ import annotations

from prefect import flow

from tasks.core import tracking
from tasks.core.config import Config
from tasks.monitor import TriggerDecision, assess_batch, trigger_retraining


@flow(name="monitoring", log_prints=True)
def monitoring(config: Config, data: str) -> TriggerDecision:
    """Validate ``data``, measure drift against the champion, maybe trigger retraining."""
    uri = tracking.configure(config.tracking.uri)
    run_id = tracking.start_run("mlpipe-monitoring", f"monitor-{config.dataset.source}", uri,
                                {"mlpipe.monitor.data": data})  # fmt: skip
    try:
        assessment = assess_batch(config, data)
        tracking.log_metrics(run_id, {"rows": assessment.rows,
                                      "drift_columns": len(assessment.drifted)})  # fmt: skip
        decision = trigger_retraining(assessment, config, run_id)
    except BaseException:
        tracking.end_run(run_id, failed=True)
        raise
    tracking.end_run(run_id, failed=False)
    return decision
