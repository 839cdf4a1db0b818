"""Stage: assess a new batch (gate, drift against the champion) and retrain on drift.

A retraining is triggered at most once per batch (idempotency key on the batch's digest) and
not again within the cooldown.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

from prefect import task
from pydantic import BaseModel, ConfigDict

from tasks.core import tracking
from tasks.core.config import Config
from tasks.core.datasets import dataset_name, read_table
from tasks.drift import measure
from tasks.load import resolve_schema
from tasks.validate import apply_gate, publish_prefect_markdown, run_checks, suite_for

TRAINING_DEPLOYMENT = "training/mlpipe-training"
DRIFT_TAG = "mlpipe:drift-trigger"


class Assessment(BaseModel):
    """What the monitoring run found in a batch."""

    model_config = ConfigDict(frozen=True)

    model_name: str
    rows: int
    digest: str
    gate_passed: bool
    drifted: list[str]
    reference_version: str | None = None


class TriggerDecision(BaseModel):
    """Whether a retraining was started, and why (logged either way)."""

    model_config = ConfigDict(frozen=True)

    action: str  # triggered | duplicate | cooldown | no drift | gate failed | no server
    reason: str
    flow_run_id: str | None = None


@task(name="assess-batch")
def assess_batch(config: Config, data: str) -> Assessment:
    """Validate the batch with the dataset's suite and measure drift against the champion."""
    frame = read_table(data)
    spec = config.dataset
    schema = resolve_schema(frame, spec)
    report = run_checks(frame, suite_for(schema, spec.expectations), config.validation.engine)
    passing, _, outcome = apply_gate(frame, report, config.validation.max_quarantine_rate)
    model_name = config.tracking.model_name or f"mlpipe-{dataset_name(spec)}"
    measured = measure(passing, schema, model_name, config.validation.drift)
    return Assessment(
        model_name=model_name,
        rows=len(frame),
        digest=tracking.file_digest(Path(data)),
        gate_passed=outcome.passed,
        drifted=measured[1].drifted if measured else [],
        reference_version=measured[0] if measured else None,
    )


def cooldown_blocks(started: list[dt.datetime], now: dt.datetime, minutes: float) -> bool:
    """Whether a drift-triggered run started within the last ``minutes`` (pure)."""
    return any(now - s < dt.timedelta(minutes=minutes) for s in started)


def _recent_drift_runs(minutes: float) -> list[dt.datetime]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter

    since = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=minutes)
    # Validated from a mapping: pydantic turns the datetime into Prefect's own type.
    flt = FlowRunFilter.model_validate(
        {"tags": {"all_": [DRIFT_TAG]}, "expected_start_time": {"after_": since}}
    )
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_run_filter=flt)
    return [r.expected_start_time for r in runs if r.expected_start_time]


@task(name="trigger-retraining")
def trigger_retraining(
    assessment: Assessment, config: Config, monitor_run_id: str
) -> TriggerDecision:
    """Start the training deployment on drift, unless in cooldown or already done.

    The decision is recorded in MLflow and the Prefect UI either way.
    """
    cooldown = config.schedule.cooldown_minutes
    if not assessment.gate_passed:
        decision = TriggerDecision(action="gate failed", reason="batch failed the quality gate")
    elif not assessment.drifted:
        decision = TriggerDecision(action="no drift", reason="no column drifted")
    elif not os.environ.get("PREFECT_API_URL"):
        decision = TriggerDecision(action="no server", reason="drift, but PREFECT_API_URL is "
                                   "not set: no training deployment to trigger")  # fmt: skip
    elif cooldown_blocks(_recent_drift_runs(cooldown), dt.datetime.now(dt.UTC), cooldown):
        decision = TriggerDecision(
            action="cooldown",
            reason=f"a drift-triggered retraining started in the last {cooldown} min",
        )
    else:
        from prefect.deployments import run_deployment

        key = f"drift-{assessment.model_name}-{assessment.digest[:16]}"
        run: Any = run_deployment(
            TRAINING_DEPLOYMENT, parameters={"config": config.model_dump(mode="json")},
            timeout=0, tags=[DRIFT_TAG], idempotency_key=key,
        )  # fmt: skip
        duplicate = run.created is not None and (
            dt.datetime.now(dt.UTC) - run.created > dt.timedelta(seconds=30)
        )
        decision = TriggerDecision(
            action="duplicate" if duplicate else "triggered",
            reason=(f"this batch already triggered run {run.id}" if duplicate else
                    f"drift in {', '.join(assessment.drifted)}"),
            flow_run_id=str(run.id),
        )  # fmt: skip
    tracking.set_tags(monitor_run_id, {
        "mlpipe.monitor.action": decision.action, "mlpipe.monitor.reason": decision.reason,
        "mlpipe.monitor.drifted": ", ".join(assessment.drifted) or "none",
        "mlpipe.monitor.flow_run": decision.flow_run_id or "",
    })  # fmt: skip
    publish_prefect_markdown(
        f"# Monitoring: {decision.action}\n\n{decision.reason}\n\n"
        f"- model: {assessment.model_name} (reference v{assessment.reference_version})\n"
        f"- rows: {assessment.rows}, drifted: {', '.join(assessment.drifted) or 'none'}\n",
        f"monitor-{assessment.model_name}",
    )
    return decision
