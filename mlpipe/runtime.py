"""Process-level setup done by entry points (never at import): env defaults, logging, signals."""

from __future__ import annotations

import logging
import os
import signal
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from mlpipe.secrets import hide, redact, remember

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
    # MLflow writes "View run ... at: <tracking URI>" straight to stdout, credentials included;
    # mlpipe prints its own review hint.
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
    "GIT_PYTHON_REFRESH": "quiet",
}


def checkout_prefect_home() -> Path | None:
    """``<checkout>/.mlpipe/prefect`` when mlpipe runs from a source checkout, else ``None``."""
    root = Path(__file__).resolve().parents[1]
    if (root / "pyproject.toml").is_file() and (root / "flows").is_dir():
        return root / ".mlpipe" / "prefect"
    return None


def _use_checkout_prefect_home() -> None:
    """Point ``PREFECT_HOME`` into the checkout unless the environment says otherwise.

    Two clones on one machine must not share one temporary server's database (the runs,
    deployments and logs of the other checkout's code).
    """
    home = checkout_prefect_home()
    if not home or os.environ.get("PREFECT_HOME") or os.environ.get("PREFECT_API_URL"):
        return
    try:
        home.mkdir(parents=True, exist_ok=True)  # Prefect makes only the last folder
    except OSError:
        return  # a read-only checkout: Prefect's default home
    os.environ["PREFECT_HOME"] = str(home)


class Terminated(BaseException):
    """SIGTERM arrived outside a flow run (inside one, Prefect raises its own signal)."""


def configure_environment() -> None:
    """Set environment defaults for Prefect, MLflow and GX before they are imported."""
    for key, value in ENV_DEFAULTS.items():
        os.environ.setdefault(key, value)
    _use_checkout_prefect_home()
    # Database and tracking URLs given through the environment: their passwords are hidden in
    # every message, even in pieces quoted by a driver.
    for key, value in os.environ.items():
        if key.endswith(("_URI", "_URL")):
            remember(value)
    # A data password the environment passes (or the CLI moved out of --data): hidden too.
    for key in ("MLPIPE_DATA_PASSWORD", "PGPASSWORD"):
        if os.environ.get(key):
            hide(os.environ[key])
    # Libraries calling APIs that pandas 3 deprecates: their problem, not the user's.
    warnings.filterwarnings("ignore", category=DeprecationWarning, module="mlflow")
    warnings.filterwarnings("ignore", category=DeprecationWarning, module="great_expectations")
    warnings.filterwarnings("ignore", category=FutureWarning, module="mlflow")


def _redacting_factory(base: Callable[..., logging.LogRecord]) -> Callable[..., logging.LogRecord]:
    """Wrap the record factory so no log line of any library carries a credential."""

    def make(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = base(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a broken %-format: leave the record as the library made it
            return record
        safe = redact(message)
        if safe != message:
            record.msg, record.args = safe, None
        return record

    make._mlpipe = True  # type: ignore[attr-defined]
    return make


class _Stderr(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time (it may be replaced, e.g. by tests)."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def redact_log_records() -> None:
    """Redact remembered credentials in every log record of every library (idempotent)."""
    factory = logging.getLogRecordFactory()
    if not getattr(factory, "_mlpipe", False):
        logging.setLogRecordFactory(_redacting_factory(factory))


def configure_logging(verbose: bool = False) -> None:
    """Show ``mlpipe.*`` progress on stderr; redact credentials in every log record."""
    redact_log_records()
    log = logging.getLogger("mlpipe")
    log.setLevel(logging.DEBUG if verbose else logging.INFO)
    if not any(getattr(h, "_mlpipe", False) for h in log.handlers):
        handler = _Stderr()
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s", "%H:%M:%S"))
        handler._mlpipe = True  # type: ignore[attr-defined]
        log.addHandler(handler)
    # Prefect adds its own console handler to extra loggers; ours already prints them.
    log.propagate = False
    if not verbose:
        # MLflow announces table creation and each registered version at INFO.
        logging.getLogger("mlflow").setLevel(logging.WARNING)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise Terminated(signum)


def handle_sigterm() -> None:
    """Turn SIGTERM into an exception, so cleanup runs (runs closed, temp servers stopped)."""
    signal.signal(signal.SIGTERM, _on_sigterm)
