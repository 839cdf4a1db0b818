"""Stage: drift of incoming data against the champion's training data.

Also stores the training profile that each new model version keeps for later comparisons.
"""

from __future__ import annotations

import pandas as pd
from prefect import task

from tasks.core import plots, tracking
from tasks.core.config import DriftConfig
from tasks.core.drift import DriftReport, Profile, build_profile, compare
from tasks.core.errors import DataDriftError
from tasks.core.run import RunContext, logger, read_parquet
from tasks.core.schema import Schema, coerce_features
from tasks.split import Splits
from tasks.validate import ValidatedData, publish_prefect_markdown

PROFILE_ARTIFACT = "drift/reference_profile.json"


def champion_profile(model_name: str) -> tuple[str, Profile] | None:
    """The champion's version and training profile, if there is a champion with a profile."""
    current = tracking.champion(model_name)
    if current is None:
        return None
    data = tracking.load_dict(current.run_id, PROFILE_ARTIFACT)
    return (current.version, Profile.model_validate(data)) if data else None


def measure(
    frame: pd.DataFrame, schema: Schema, model_name: str, cfg: DriftConfig
) -> tuple[str, DriftReport] | None:
    """Drift of raw rows against the champion; ``None`` when there is nothing to compare to."""
    found = champion_profile(model_name)
    if found is None:
        return None
    version, profile = found
    coerced, _ = coerce_features(frame, schema)
    return version, compare(profile, coerced, threshold=cfg.psi_threshold)


@task(name="drift")
def check_drift(
    data: ValidatedData, cfg: DriftConfig, model_name: str, run: RunContext
) -> DriftReport | None:
    """Compare the validated rows with the champion's profile; log; apply the drift gate."""
    log = logger("drift")
    if cfg.gate == "off":
        return None
    measured = measure(read_parquet(data.path), data.dataset, model_name, cfg)
    if measured is None:
        log.info("no champion with a reference profile for %s: drift not measured", model_name)
        tracking.set_tags(run.run_id, {"mlpipe.drift.status": "not measured"})
        return None
    version, report = measured
    table = report.table()
    tracking.log_table(run.run_id, table, "drift/drift_table.json")
    tracking.log_text(run.run_id, report.markdown(), "drift/summary.md")
    tracking.log_figure(
        run.run_id,
        plots.drift_bars(
            table["column"].tolist(), table["psi"].tolist(), table["drifted"].tolist(),
            report.threshold,
        ),
        "drift/psi.png",
    )  # fmt: skip
    tracking.log_metrics(
        run.run_id,
        {"drift_columns": len(report.drifted), "drift_max_psi": float(table["psi"].max())},
    )
    status = "drift" if report.drifted else "stable"
    tracking.set_tags(
        run.run_id, {"mlpipe.drift.status": status, "mlpipe.drift.reference_version": version}
    )
    publish_prefect_markdown(report.markdown(), f"drift-{data.dataset.name}")
    if report.drifted:
        message = (
            f"drift against {model_name} v{version} in {len(report.drifted)} column(s): "
            + ", ".join(f"{c.column} (PSI {c.psi:.2f})" for c in report.columns if c.drifted)
        )
        if cfg.gate == "fail":
            raise DataDriftError(message)
        log.warning("%s", message)
    else:
        log.info("no drift against %s v%s (%d columns)", model_name, version, len(table))
    return report


@task(name="profile")
def profile_training_data(splits: Splits, cfg: DriftConfig, run: RunContext) -> str:
    """Store the training split's profile on the run; the registered version points to it."""
    profile = build_profile(read_parquet(splits.train), splits.dataset, bins=cfg.bins)
    tracking.log_dict(run.run_id, profile.model_dump(mode="json"), PROFILE_ARTIFACT)
    return PROFILE_ARTIFACT
