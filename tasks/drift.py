"""Stage: drift of incoming data against the champion's training data; the training profile."""

from __future__ import annotations

import logging

from prefect import task

from mlpipe.config import DriftConfig
from mlpipe.errors import DataDriftError
from mlpipe.handoff import RunContext, Splits, ValidatedData
from mlpipe.io import tracking
from mlpipe.io.tables import iter_partitions
from mlpipe.learn.drift import DriftReport, build_profile
from mlpipe.monitoring import log_drift
from mlpipe.orchestration import publish_markdown
from mlpipe.registry import PROFILE_ARTIFACT, measure_drift

log = logging.getLogger("mlpipe.drift")


@task(name="drift")
def check_drift(
    data: ValidatedData, cfg: DriftConfig, model_name: str, run: RunContext
) -> DriftReport | None:
    """Compare the validated rows with the champion's profile; log; apply the drift gate."""
    if cfg.gate == "off":
        return None
    measured = measure_drift(
        iter_partitions(data.path, progress="drift check"), data.dataset, model_name, cfg
    )
    if measured is None:
        log.info("no champion with a reference profile for %s: drift not measured", model_name)
        tracking.set_tags(run.run_id, {"mlpipe.drift.status": "not measured"})
        return None
    version, report = measured
    log_drift(run.run_id, report, run.path("."))
    status = "drift" if report.drifted else "stable"
    tracking.set_tags(
        run.run_id, {"mlpipe.drift.status": status, "mlpipe.drift.reference_version": version}
    )
    publish_markdown(report.markdown(), f"drift-{data.dataset.name}", "mlpipe drift")
    if report.drifted:
        message = (
            f"drift against {model_name} v{version} in {len(report.drifted)} column(s): "
            + ", ".join(f"{c.column} (PSI {c.psi:.2f})" for c in report.columns if c.drifted)
        )
        if cfg.gate == "fail":
            raise DataDriftError(message)
        log.warning("%s", message)
    else:
        log.info("no drift against %s v%s (%d columns)", model_name, version, len(report.columns))
    return report


@task(name="profile")
def profile_training_data(splits: Splits, cfg: DriftConfig, run: RunContext) -> str:
    """Store the training split's profile on the run; the registered version points to it."""
    columns = [*splits.dataset.numeric, *splits.dataset.categorical]
    profile = build_profile(
        iter_partitions(splits.train, columns, "training profile"), splits.dataset, bins=cfg.bins
    )
    tracking.log_dict(run.run_id, profile.model_dump(mode="json"), PROFILE_ARTIFACT)
    return PROFILE_ARTIFACT
