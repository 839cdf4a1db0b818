"""The one adapter between the library and Prefect.

It is the only module of ``mlpipe`` that imports Prefect or the flows.
It runs flows for the CLI, starts a temporary Prefect server that dies with its process when no
server is configured, publishes Markdown artifacts, and closes flow runs that a killed process
left Running.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import logging
import os
import re
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from mlpipe.errors import MlpipeError
from mlpipe.io.processes import die_with_parent

if TYPE_CHECKING:
    from mlpipe.config import Config
    from mlpipe.handoff import (
        BatchResult,
        LoadedData,
        PredictRequest,
        TrainingResult,
        TriggerDecision,
    )

TRAINING_DEPLOYMENT = "training/mlpipe-training"
log = logging.getLogger("mlpipe.orchestration")
_temporary: dict[str, str | None] = {"url": None}


class PrefectUnavailableError(MlpipeError):
    """No Prefect server is configured and a temporary one could not start."""


class NoDeploymentError(MlpipeError):
    """The server has no training deployment (nobody ran ``mlpipe deploy`` against it)."""


def configured_api() -> str | None:
    """The Prefect API URL in effect (environment, profile or test harness), if any."""
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value() or None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class _Server:
    process: subprocess.Popen[bytes]
    url: str
    errors: IO[bytes]


_prestarted: list[_Server] = []


def _launch() -> _Server:
    """Start a temporary Prefect API server (not waiting for it), tied to this process."""
    spec = importlib.util.find_spec("prefect")  # where it is, without importing it (seconds)
    assert spec is not None and spec.origin is not None, "prefect is a dependency"
    port = _free_port()
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        "--app-dir",
        str(Path(spec.origin).parent.parent),
        "--factory",
        "prefect.server.api.server:create_app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "error",
        "--lifespan",
        "on",
    ]
    env = {
        **os.environ,
        "PREFECT_UI_ENABLED": "0",
        "PREFECT__SERVER_EPHEMERAL": "1",
        "PREFECT__SERVER_FINAL": "1",
    }
    errors = tempfile.TemporaryFile()  # noqa: SIM115 (closed by prefect_api with the server)
    process = subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=errors, preexec_fn=die_with_parent
    )
    return _Server(process, f"http://127.0.0.1:{port}/api", errors)


def prestart_server() -> None:
    """Start the temporary Prefect server now, so its start-up overlaps other work.

    Does nothing when ``PREFECT_API_URL`` is set. The next :func:`prefect_api` adopts the
    server, or stops it when a Prefect profile names a server after all; if none does, it is
    stopped at exit (and by the kernel if this process is killed).
    """
    if not _prestarted and not os.environ.get("PREFECT_API_URL"):
        _prestarted.append(_launch())
        atexit.register(stop_prestarted)


def _stop(server: _Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()
    server.errors.close()


def stop_prestarted() -> None:
    """Stop a server :func:`prestart_server` started that nothing adopted."""
    while _prestarted:
        _stop(_prestarted.pop())


@contextlib.contextmanager
def prefect_api(timeout: float | None = None) -> Iterator[str]:
    """Use the configured Prefect API, or a temporary server tied to this process.

    Prefect's own temporary server outlives a process killed with SIGKILL; this one is started
    with ``PR_SET_PDEATHSIG``, so the kernel stops it when its parent dies, however it dies.

    Yields:
        The API URL.
    """
    from prefect.settings import PREFECT_API_URL, temporary_settings

    configured = configured_api()
    if configured:
        stop_prestarted()
        yield configured
        return
    from mlpipe.servers import wait_healthy

    wait = timeout or float(os.environ.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", 90))
    server = _prestarted.pop() if _prestarted else _launch()
    up = False
    try:
        if not wait_healthy(f"{server.url}/health", wait) or server.process.poll() is not None:
            server.errors.seek(0)
            tail = server.errors.read().decode(errors="replace").strip().splitlines()[-1:] or [""]
            raise PrefectUnavailableError(
                f"the temporary Prefect server did not start within {wait:.0f}s "
                f"({tail[0][:200]}); set PREFECT_API_URL to a running server"
            )
        up = True
        with temporary_settings(updates={PREFECT_API_URL: server.url}):
            _temporary["url"] = server.url
            yield server.url
    finally:
        _temporary["url"] = None
        if up:  # interrupted while starting: nothing was sent, and nothing can be
            _drain_prefect_workers()
        _stop(server)


def _drain_prefect_workers() -> None:
    """Send buffered logs and events before the temporary server stops.

    Otherwise Prefect's workers retry against a dead server at exit for over a minute.
    """
    with contextlib.suppress(Exception):
        from prefect.logging.handlers import APILogHandler

        APILogHandler().flush()
    with contextlib.suppress(Exception):
        from prefect.events.worker import EventsWorker

        EventsWorker.drain_all(timeout=10)


def on_temporary_server() -> bool:
    """Whether flows run against this process's temporary server (no deployments there)."""
    return _temporary["url"] is not None and configured_api() == _temporary["url"]


def run_training(config: Config, staged: LoadedData | None = None) -> TrainingResult:
    """Run the training flow (against the configured or a temporary Prefect server).

    ``staged``: the data the caller's pre-flight already copied and resolved, so the flow
    does not read the source again.
    """
    prestart_server()  # starts while the flow's libraries import
    from flows.training import training

    with prefect_api():
        return training(config, staged=staged)


def run_batch_predict(request: PredictRequest) -> BatchResult:
    """Run the batch prediction flow."""
    prestart_server()  # starts while the flow's libraries import
    from flows.batch_predict import batch_predict

    with prefect_api():
        return batch_predict(request)


def run_monitoring(config: Config, data: str) -> TriggerDecision:
    """Run the monitoring flow on one batch."""
    prestart_server()  # starts while the flow's libraries import
    from flows.monitoring import monitoring

    with prefect_api():
        return monitoring(config, data)


def serve(config: Config) -> None:
    """Register and serve the deployments until Ctrl-C (needs a configured server)."""
    from flows.deployments import serve_deployments

    serve_deployments(config)


def trigger_training(
    config: Config, *, wait: bool, tags: list[str], idempotency_key: str | None = None
) -> Any:
    """Start a run of the training deployment; with ``wait``, until it ends."""
    from prefect.deployments import run_deployment
    from prefect.exceptions import ObjectNotFound

    try:
        return run_deployment(
            TRAINING_DEPLOYMENT,
            parameters={"config": config.model_dump(mode="json"), "window": True},
            timeout=None if wait else 0,
            tags=tags,
            idempotency_key=idempotency_key,
        )
    except ObjectNotFound:
        raise NoDeploymentError(
            f"no deployment {TRAINING_DEPLOYMENT} on {configured_api()}: start `mlpipe deploy`"
        ) from None


def recent_runs_with_tag(tag: str, minutes: float) -> list[Any]:
    """Start times of flow runs with ``tag`` expected to start in the last ``minutes``."""
    import datetime as dt

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter

    since = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=minutes)
    # Validated from a mapping: pydantic turns the datetime into Prefect's own type.
    flt = FlowRunFilter.model_validate(
        {"tags": {"all_": [tag]}, "expected_start_time": {"after_": since}}
    )
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_run_filter=flt)
    return [r.expected_start_time for r in runs if r.expected_start_time]


def prepare_run_process(flow: Any, flow_run: Any, state: Any) -> None:
    """Flow hook (``on_running``): mlpipe's log lines reach the run's Prefect logs.

    A run started by a deployment (cron, ``retrain``, a drift trigger) executes in a process
    the mlpipe CLI did not set up: there the ``mlpipe`` loggers inherited the root's WARNING
    level, so every stage line was dropped, and a worker started without mlpipe's environment
    does not forward them to the API at all. Under ``mlpipe train`` this changes nothing.
    """
    from prefect.logging.handlers import APILogHandler

    from mlpipe.runtime import configure_environment, redact_log_records

    configure_environment()  # remembers the environment's credentials, for redaction
    redact_log_records()
    logger = logging.getLogger("mlpipe")
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)
    if not any(isinstance(h, APILogHandler) for h in logger.handlers):
        logger.addHandler(APILogHandler())


def flow_run_id() -> str | None:
    """The id of the Prefect flow run this code runs in, if any."""
    from prefect.context import FlowRunContext

    ctx = FlowRunContext.get()
    return str(ctx.flow_run.id) if ctx and ctx.flow_run else None


def publish_markdown(markdown: str, key: str, description: str) -> None:
    """Attach a Markdown artifact to the current Prefect run (no-op outside a run)."""
    from prefect.artifacts import create_markdown_artifact
    from prefect.context import get_run_context

    try:
        get_run_context()
    except Exception:  # no flow or task run: nothing to attach to
        return
    safe = re.sub(r"[^a-z0-9-]+", "-", key.lower()).strip("-")[:100] or "mlpipe"
    create_markdown_artifact(markdown=markdown, key=safe, description=description)


def crash_flow_runs(ids: list[str], message: str) -> list[str]:
    """Mark flow runs that a killed process left non-final as Crashed; return those closed."""
    from prefect.client.orchestration import get_client
    from prefect.states import Crashed

    closed = []
    with get_client(sync_client=True) as client:
        for run_id in ids:
            with contextlib.suppress(Exception):
                run = client.read_flow_run(uuid.UUID(run_id))
                if run.state is None or not run.state.is_final():
                    client.set_flow_run_state(run.id, Crashed(message=message), force=True)
                    closed.append(run_id)
    return closed


def is_termination(err: BaseException) -> bool:
    """Whether ``err`` is Prefect's translation of SIGTERM inside a flow."""
    from prefect.exceptions import TerminationSignal

    return isinstance(err, TerminationSignal)


class _QuietTracebacks(logging.Filter):
    """Drop Prefect's tracebacks and failed-state echoes; the CLI prints one line (-v: keep)."""

    def __init__(self, verbose: bool):
        super().__init__()
        self.verbose = verbose

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is None:
            # "Finished in state Failed(...)" repeats the error the CLI is about to print
            # (Prefect logs it at ERROR or, for some flow failures, at INFO).
            message = str(record.msg)
            echo = message.startswith("Finished in") and "Completed" not in message[:30]
            return self.verbose or not echo
        return self.verbose and not isinstance(exc, MlpipeError)


def quiet_tracebacks(verbose: bool) -> None:
    """Install :class:`_QuietTracebacks` on Prefect's run loggers."""
    for name in ("prefect.flow_runs", "prefect.task_runs", "prefect.engine", "prefect"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _QuietTracebacks) for f in logger.filters):
            logger.addFilter(_QuietTracebacks(verbose))
