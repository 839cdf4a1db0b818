"""Process-level setup done by entry points (never at import): env defaults and logging."""

from __future__ import annotations

import logging
import os
import sys
import warnings

# setdefault: anything the user exported wins.
ENV_DEFAULTS = {
    # Prefect: no telemetry, a patient temporary server, no per-task "Finished" noise, and our
    # own `mlpipe.*` loggers forwarded to Prefect (console and, under a server, its UI).
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
    "PREFECT_LOGGING_LOGGERS_PREFECT_TASK_RUNS_LEVEL": "WARNING",
    "PREFECT_LOGGING_EXTRA_LOGGERS": "mlpipe",
    # ...and outside a flow run (e.g. `mlpipe validate`) they simply stay local.
    "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
    # MLflow / Great Expectations / others: telemetry off, no progress bars, quiet git probing.
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "GX_ANALYTICS_ENABLED": "false",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "GIT_PYTHON_REFRESH": "quiet",
}


class _DropExpectedErrors(logging.Filter):
    """Drop Prefect's tracebacks for user errors; the CLI prints those as one clear line."""

    def filter(self, record: logging.LogRecord) -> bool:
        from tasks.core.errors import MlpipeError

        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, MlpipeError)


def configure_environment() -> None:
    """Set environment defaults for Prefect, MLflow and GX before they are imported."""
    for key, value in ENV_DEFAULTS.items():
        os.environ.setdefault(key, value)
    # Libraries calling APIs that pandas 3 deprecates: their problem, not the user's.
    warnings.filterwarnings("ignore", category=DeprecationWarning, module="mlflow")
    warnings.filterwarnings("ignore", category=DeprecationWarning, module="great_expectations")


def configure_logging(verbose: bool = False) -> None:
    """Show ``mlpipe.*`` progress on stderr; silence Prefect tracebacks for user errors."""
    log = logging.getLogger("mlpipe")
    log.setLevel(logging.DEBUG if verbose else logging.INFO)
    if not any(getattr(h, "_mlpipe", False) for h in log.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s", "%H:%M:%S"))
        handler._mlpipe = True  # type: ignore[attr-defined]
        log.addHandler(handler)
    # Prefect adds its own console handler to extra loggers; ours already prints them.
    log.propagate = False
    for name in ("prefect.flow_runs", "prefect.task_runs", "prefect.engine"):
        logging.getLogger(name).addFilter(_DropExpectedErrors())
