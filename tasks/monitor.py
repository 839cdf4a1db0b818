"""Stage: assess a new batch (gate, drift against the champion) and retrain on drift.

A retraining is triggered at most once per batch (idempotency key on the batch's digest) and
not again within the cooldown.
"""

from __future__ import annotations

import datetime as dt
import logging
import tempfile
from pathlib import Path
from typing import Any

from prefect import task

from mlpipe.config import Config
from mlpipe.data.datasets import model_name
from mlpipe.data.privacy import masker
from mlpipe.data.roles import resolve_schema
from mlpipe.errors import RegistryError
from mlpipe.handoff import Assessment, TriggerDecision
from mlpipe.io import tracking
from mlpipe.io.sources import readable
from mlpipe.io.tables import read_table
from mlpipe.monitoring import keep_batch, log_drift
from mlpipe.orchestration import (
    NoDeploymentError,
    configured_api,
    on_temporary_server,
    publish_markdown,
    recent_runs_with_tag,
    trigger_training,
)
from mlpipe.quality.gate import MostlyTally, apply_gate, failure_message, run_checks, with_mostly
from mlpipe.quality.suites import batch_suite, training_suite
from mlpipe.registry import measure_drift, resolve
from mlpipe.serving.predictor import sha256_file

DRIFT_TAG = "mlpipe:drift-trigger"
log = logging.getLogger("mlpipe.monitor")


@task(name="assess-batch")
def assess_batch(config: Config, data: str, run_id: str) -> Assessment:
    """Validate the batch with the champion's suite, measure drift against the champion.

    The drift table and plot go to the monitoring run ``run_id``; a batch that passed the
    gate and holds the target is kept in the batch store, for training windows.
    """
    # Personal data hashed as it is read: kept batches, reports and drift tables never hold it.
    with readable(data) as local:  # a URL: read from a local copy
        frame = masker(config.dataset.pii)(read_table(local, config.dataset.encoding))
        digest = sha256_file(local)
    name = model_name(config.dataset, config.tracking.model_name)
    try:
        served = resolve(name)
        schema, suite = served.dataset, served.suite
    except RegistryError:  # no champion yet: the dataset's own suite
        schema = resolve_schema(frame, config.dataset)
        suite = training_suite(schema, config.dataset.expectations)
    if suite is None:
        suite = training_suite(schema, config.dataset.expectations)
    checks = batch_suite(suite, schema.target, schema.target in frame.columns, schema.pii)
    tally = MostlyTally(config.validation.batch_alpha)
    report = run_checks(frame, checks, config.validation.engine)
    passing, _, outcome = apply_gate(frame, report, config.validation.max_quarantine_rate, tally)
    outcome = with_mostly(outcome, tally)
    measured = measure_drift(passing, schema, name, config.validation.drift)
    if measured:
        with tempfile.TemporaryDirectory() as folder:
            log_drift(run_id, measured[1], Path(folder))
    accepted = None
    if outcome.passed:
        accepted = keep_batch(config, passing, schema.target)
        log.info("batch %s", accepted)
        tracking.set_tags(run_id, {"mlpipe.monitor.accepted": accepted})
    return Assessment(
        model_name=name,
        rows=len(frame),
        digest=digest,
        gate_passed=outcome.passed,
        gate_message=None if outcome.passed else failure_message(report, outcome),
        drifted=measured[1].drifted if measured else [],
        reference_version=measured[0] if measured else None,
        accepted=accepted,
    )


def cooldown_blocks(started: list[dt.datetime], now: dt.datetime, minutes: float) -> bool:
    """Whether a drift-triggered run started within the last ``minutes`` (pure)."""
    return any(now - s < dt.timedelta(minutes=minutes) for s in started)


@task(name="trigger-retraining")
def trigger_retraining(
    assessment: Assessment, config: Config, monitor_run_id: str
) -> TriggerDecision:
    """Start the training deployment on drift, unless in cooldown or already done.

    The decision is recorded in MLflow and the Prefect UI either way.
    """
    cooldown = config.schedule.cooldown_minutes
    if not assessment.gate_passed:
        decision = TriggerDecision(
            action="gate failed", reason=assessment.gate_message or "batch failed the quality gate"
        )
    elif not assessment.drifted:
        decision = TriggerDecision(action="no drift", reason="no column drifted")
    elif configured_api() is None or on_temporary_server():
        decision = TriggerDecision(
            action="no server",
            reason="drift, but no Prefect server is "
            "configured (PREFECT_API_URL): no deployment to trigger",
        )
    elif cooldown_blocks(
        recent_runs_with_tag(DRIFT_TAG, cooldown), dt.datetime.now(dt.UTC), cooldown
    ):
        decision = TriggerDecision(
            action="cooldown",
            reason=f"a drift-triggered retraining started in the last {cooldown} min",
        )
    else:
        key = f"drift-{assessment.model_name}-{assessment.digest[:16]}"
        try:
            run = trigger_training(config, wait=False, tags=[DRIFT_TAG], idempotency_key=key)
        except NoDeploymentError as err:
            decision = TriggerDecision(
                action="no deployment", reason=f"drift in {', '.join(assessment.drifted)}; {err}"
            )
        else:
            decision = _started(run, assessment)
    tracking.set_tags(
        monitor_run_id,
        {
            "mlpipe.monitor.action": decision.action,
            "mlpipe.monitor.reason": decision.reason,
            "mlpipe.monitor.drifted": ", ".join(assessment.drifted) or "none",
            "mlpipe.monitor.flow_run": decision.flow_run_id or "",
        },
    )
    summary = (
        f"# Monitoring: {decision.action}\n\n{decision.reason}\n\n"
        f"- model: {assessment.model_name} (reference v{assessment.reference_version})\n"
        f"- rows: {assessment.rows}, drifted: {', '.join(assessment.drifted) or 'none'}\n"
        f"- batch: {assessment.accepted or 'not kept (failed the gate)'}\n"
    )
    tracking.log_text(monitor_run_id, summary, "monitor/decision.md")
    publish_markdown(summary, f"monitor-{assessment.model_name}", "mlpipe monitoring decision")
    log.info("monitoring: %s (%s)", decision.action, decision.reason)
    return decision


def _started(run: Any, assessment: Assessment) -> TriggerDecision:
    """The decision for a started run (or the one this batch started before: same key)."""
    duplicate = run.created is not None and (
        dt.datetime.now(dt.UTC) - run.created > dt.timedelta(seconds=30)
    )
    return TriggerDecision(
        action="duplicate" if duplicate else "triggered",
        reason=(
            f"this batch already triggered run {run.id}"
            if duplicate
            else f"drift in {', '.join(assessment.drifted)}"
        ),
        flow_run_id=str(run.id),
    )
