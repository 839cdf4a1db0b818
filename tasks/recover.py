"""Stage: close what killed processes left open (MLflow runs, versions, flow runs, run dirs)."""

from __future__ import annotations

import logging

from prefect import task

from mlpipe.config import Config
from mlpipe.io import tracking
from mlpipe.io.runs import remove_run_dirs
from mlpipe.orchestration import crash_flow_runs

log = logging.getLogger("mlpipe.recover")


@task(name="recover")
def recover_abandoned(config: Config) -> list[str]:
    """Close what killed processes left open; return the recovered run ids.

    Their MLflow runs become FAILED, their pending versions failed, their flow runs Crashed,
    and their run directories are removed.
    """
    tracking.configure(config.tracking.uri, config.tracking.retry_seconds)
    recovered = tracking.recover_abandoned()
    if not recovered:
        return []
    flow_runs = [r.flow_run_id for r in recovered if r.flow_run_id]
    if flow_runs:
        crash_flow_runs(flow_runs, "its process was killed (recovered by a later flow run)")
    remove_run_dirs(config.runs_dir, [r.run_id for r in recovered])
    for r in recovered:
        versions = f"; versions marked failed: {', '.join(r.versions)}" if r.versions else ""
        log.warning("recovered run %s left RUNNING by a killed process%s", r.run_id, versions)
    return [r.run_id for r in recovered]
