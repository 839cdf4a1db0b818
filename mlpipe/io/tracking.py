"""The one place that talks to MLflow: runs, params, metrics, artifacts, registry, aliases.

Every function takes an explicit ``run_id`` instead of relying on MLflow's thread-local active
run, so tasks behave the same in threads, processes or Dask workers. Nothing happens at import.

Faults are bounded and reported in one line: HTTP retries are capped by
``tracking.retry_seconds`` (:func:`configure`), and an unreachable backend becomes a
:class:`~mlpipe.errors.TrackingError`; after that, cleanup calls are skipped instead of retried.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import random
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from mlpipe.errors import MlpipeError, RegistryError, TrackingError, interruption
from mlpipe.io.processes import file_lock, owner, owner_alive
from mlpipe.secrets import redact, remember

if TYPE_CHECKING:
    import pandas as pd

CHAMPION = "champion"
DEFAULT_DB = "mlflow.db"
DEFAULT_ARTIFACTS = "mlruns"
HISTORY_TAG = "mlpipe.alias_move."
OWNER_TAG = "mlpipe.owner"
ERROR_TAG = "mlpipe.error"
FLOW_RUN_TAG = "mlpipe.prefect.flow_run_id"
LOCK_SUFFIX = ".mlpipe-lock"
# Tags of a model version that say what the gate and the smoke test decided.
DECISION_TAG = "mlpipe.decision"
# MLflow's limits on run param and tag values (longer ones are truncated with a warning).
MAX_PARAM_LENGTH, MAX_TAG_LENGTH = 6000, 8000
# Judged eligible and better, the alias move under way; what recovery finds after a kill there.
PROMOTING = "promoting"
ELIGIBLE_TAG = "mlpipe.eligible"
ELIGIBLE_REASON_TAG = "mlpipe.eligible.reason"

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger("mlpipe.tracking")
_state: dict[str, Any] = {"uri": None, "down": False, "retry_seconds": 60.0}
_OUTAGE_MARKERS = (
    "Max retries exceeded",
    "Connection refused",
    "Failed to establish a new connection",
    "Read timed out",
    "ConnectTimeout",
    "RemoteDisconnected",
    "Connection aborted",
    "Connection reset",
    "could not connect to server",
    "failed with error code 50",
    "Temporary failure in name resolution",
    "Name or service not known",
)


def resolve_uri(uri: str | None = None) -> str:
    """Pick the tracking URI: explicit, else ``MLFLOW_TRACKING_URI``, else local SQLite in cwd."""
    if uri:
        return uri
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return f"sqlite:///{Path.cwd() / DEFAULT_DB}"


def _retry_environment(seconds: float) -> None:
    """Bound MLflow's HTTP retries to about ``seconds`` in all (the user's settings win)."""
    retries = 3
    timeout = max(2, int((seconds - 10) / (retries + 1)))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", str(retries))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_JITTER", "0.5")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(timeout))


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI, else None."""
    if uri.startswith("sqlite:///"):
        return Path(uri.removeprefix("sqlite:///"))
    return None


def configure(uri: str | None = None, retry_seconds: float = 60.0) -> str:
    """Point MLflow tracking and registry at ``resolve_uri(uri)`` and return it.

    A new SQLite store is created under an inter-process lock: MLflow's first-use schema setup
    is not safe when several processes start on the same new file at once.
    """
    import mlflow

    resolved = resolve_uri(uri)
    _retry_environment(retry_seconds)
    mlflow.set_tracking_uri(resolved)
    mlflow.set_registry_uri(resolved)
    _state.update(uri=resolved, down=False, retry_seconds=retry_seconds)
    probe_database(resolved)
    db = sqlite_path(resolved)
    if db is not None:
        db.parent.mkdir(parents=True, exist_ok=True)
        with file_lock(db.with_name(db.name + ".lock")):
            if not db.exists() or db.stat().st_size == 0:
                _create_sqlite_store(db)
            try:
                _client().search_experiments(max_results=1)
                _client().search_registered_models(max_results=1)
            except Exception as err:
                reason = " ".join(str(getattr(err, "orig", err)).split())[:300]
                raise TrackingError(f"cannot open the MLflow store {db}: {reason}") from None
    return resolved


def _create_sqlite_store(db: Path) -> None:
    """Create a new SQLite store beside ``db`` and rename it into place (caller holds the lock).

    MLflow's schema setup runs many migrations; a process killed half-way would leave a store
    that no later run can open. Built under a temporary name, ``db`` either does not exist yet
    or is complete.
    """
    from mlflow import MlflowClient

    for leftover in db.parent.glob(f".{db.name}.creating-*"):  # from a killed creation
        leftover.unlink(missing_ok=True)
    partial = db.with_name(f".{db.name}.creating-{os.getpid()}")
    uri = f"sqlite:///{partial}"
    try:
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        client.search_experiments(max_results=1)
        client.search_registered_models(max_results=1)
        os.replace(partial, db)
    finally:
        for path in db.parent.glob(f"{partial.name}*"):
            path.unlink(missing_ok=True)


_DATABASE_SCHEMES = ("postgresql", "mysql", "mssql")


def probe_database(uri: str, retry_seconds: float | None = None) -> None:
    """Open a database backend once, quickly, before MLflow does (other URIs: nothing).

    MLflow retries engine creation ten times with exponential backoff (about 100 s of
    multi-line warnings) even when the database does not exist or the password is wrong.

    Args:
        uri: A tracking or backend-store URI.
        retry_seconds: How long a refused connection is retried (default: the configured
            ``tracking.retry_seconds``).

    Raises:
        TrackingError: The database cannot be opened; one line, password hidden.
    """
    if uri.split(":", 1)[0].split("+", 1)[0] not in _DATABASE_SCHEMES:
        return
    import sqlalchemy

    try:
        engine = sqlalchemy.create_engine(uri, pool_pre_ping=False)
    except Exception as err:  # e.g. the driver is not installed
        raise TrackingError(f"tracking database {redact(uri)}: {redact(str(err))[:300]}") from None
    remember(uri)  # a driver's message may quote a piece of an "@" password
    budget = _state["retry_seconds"] if retry_seconds is None else retry_seconds
    deadline = time.monotonic() + budget
    waited = False
    try:
        while True:
            try:
                with engine.connect():
                    return
            except Exception as err:
                lines = [line.strip() for line in str(getattr(err, "orig", err)).splitlines()]
                reason = next((x for x in lines if "FATAL" in x), next(filter(None, lines), ""))
                # A refused connection may be a server still starting; anything else is final.
                if "Connection refused" in reason and time.monotonic() < deadline:
                    if not waited:
                        log.warning(
                            "tracking database %s refuses connections; retrying for up to %.0fs "
                            "(tracking.retry_seconds)",
                            redact(uri),
                            budget,
                        )
                    waited = True
                    time.sleep(1.0)
                    continue
                raise TrackingError(
                    f"cannot open the tracking database {redact(uri)}: {redact(reason)[:300]}"
                ) from None
    finally:
        engine.dispose()


def _client() -> Any:
    from mlflow import MlflowClient

    return MlflowClient()


def is_outage(err: BaseException) -> bool:
    """Whether an exception means the tracking backend cannot be reached."""
    try:
        import requests

        if isinstance(err, requests.exceptions.ConnectionError | requests.exceptions.Timeout):
            return True
    except ImportError:  # pragma: no cover - requests ships with mlflow
        pass
    text = str(err)
    return any(marker in text for marker in _OUTAGE_MARKERS)


def _outage_error(err: BaseException) -> TrackingError:
    _state["down"] = True
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    uri = redact(str(_state.get("uri") or resolve_uri()))
    return TrackingError(
        f"tracking server {uri} is unreachable (gave up after retrying up to "
        f"{_state['retry_seconds']:.0f}s): {redact(text)[:300]}"
    )


def _guarded_call(fn: Callable[[], Any]) -> Any:
    if _state.get("down"):
        uri = redact(str(_state.get("uri")))
        raise TrackingError(f"tracking server {uri} is unreachable")
    try:
        return fn()
    except MlpipeError:
        raise
    except Exception as err:
        signal = interruption(err)
        if signal is not None:  # SIGTERM/Ctrl-C inside MLflow, wrapped by its cleanup
            raise signal from None
        if is_outage(err):
            raise _outage_error(err) from None
        raise


def _guard(fn: F) -> F:
    """Turn an unreachable backend into one :class:`TrackingError` (and skip later calls)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return _guarded_call(lambda: fn(*args, **kwargs))

    return wrapper  # type: ignore[return-value]


def best_effort(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    """Call ``fn`` on a failure path: skipped when the backend is down, errors swallowed."""
    if _state.get("down"):
        return
    with contextlib.suppress(Exception):
        fn(*args, **kwargs)


def error_line(err: BaseException) -> str:
    """One redacted line describing an exception, for the ``mlpipe.error`` tag."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return redact(f"{type(err).__name__}: {text}")[:5000]


def _retry_on_conflict(call: Callable[[], Any], attempts: int = 5) -> Any:
    """Retry a call that lost a race on a unique row; the next attempt finds the row.

    MLflow's find-or-insert is not atomic: two runs logging the same dataset at once collide.
    """
    for attempt in range(attempts):
        try:
            return call()
        except Exception as err:
            conflict = "UNIQUE constraint failed" in str(err) or "duplicate key" in str(err)
            if not conflict or attempt == attempts - 1:
                raise
            time.sleep(0.1 + random.random() * 0.3)
    return None


def _already_exists(err: Exception) -> bool:
    return getattr(err, "error_code", "") == "RESOURCE_ALREADY_EXISTS"


@_guard
def experiment_id(name: str) -> str:
    """The id of experiment ``name``, created if missing (safe when several processes race)."""
    client = _client()
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return str(exp.experiment_id)
    location = None
    uri = str(_state.get("uri") or resolve_uri())
    db = sqlite_path(uri)
    if db is not None or "://" not in uri:
        # Local store: artifacts beside the database, absolute so `mlflow server` finds them.
        base = db.parent if db is not None else Path(uri)
        location = (base / DEFAULT_ARTIFACTS).resolve().as_uri()
    # Tell the MLflow 3 UI this is model training, so it opens on runs, not the GenAI view.
    tags = {"mlflow.experimentKind": "custom_model_development"}
    try:
        return str(client.create_experiment(name, artifact_location=location, tags=tags))
    except Exception as err:
        if not _already_exists(err):
            raise
        return str(client.get_experiment_by_name(name).experiment_id)


@_guard
def start_run(experiment: str, run_name: str, tags: dict[str, str]) -> str:
    """Create a run in ``experiment`` (created if missing) and return its id."""
    safe = {k: redact(str(v)) for k, v in tags.items()}
    run = _client().create_run(experiment_id(experiment), run_name=redact(run_name), tags=safe)
    return str(run.info.run_id)


@_guard
def end_run(run_id: str, failed: bool) -> None:
    """Mark a run FINISHED or FAILED."""
    _client().set_terminated(run_id, status="FAILED" if failed else "FINISHED")


@contextlib.contextmanager
def tracked_run(experiment: str, run_name: str, tags: dict[str, str]) -> Iterator[str]:
    """The one MLflow run lifecycle: open a run, close it FINISHED or FAILED whatever happens.

    The run is tagged with its owner process (so a later recovery can tell a run whose process
    was killed from one still going). On any error, SIGTERM or Ctrl-C included, the run gets an
    ``mlpipe.error`` tag and FAILED, a version it registered that the gate never judged is
    marked failed, and the error propagates.

    Yields:
        The run id.
    """
    run_id = start_run(experiment, run_name, {**tags, OWNER_TAG: owner()})
    try:
        yield run_id
    except BaseException as err:
        best_effort(set_tags, run_id, {ERROR_TAG: error_line(err)})
        best_effort(end_run, run_id, failed=True)
        best_effort(fail_pending_versions, run_id, f"run failed: {error_line(err)}")
        raise
    end_run(run_id, failed=False)


@_guard
def run_tags(run_id: str) -> dict[str, str]:
    """Tags of a run."""
    return dict(_client().get_run(run_id).data.tags)


@_guard
def log_params(run_id: str, params: dict[str, str]) -> None:
    """Log string params in batches (MLflow caps a batch at 100 params); secrets redacted."""
    from mlflow.entities import Param

    items = [Param(k, redact(str(v))[:MAX_PARAM_LENGTH]) for k, v in sorted(params.items())]
    client = _client()
    for i in range(0, len(items), 100):
        client.log_batch(run_id, params=items[i : i + 100])


# MLflow's UI groups charts by the part of a metric's name before "/": mlpipe's flat names
# (what the code and the CLI use) are stored as `group/name`. Longest prefixes first.
_METRIC_GROUPS = (
    ("baseline_test_", "baseline/"),
    ("trivial_test_", "trivial/"),
    ("validation_", "validation/"),
    ("train_", "train/"),
    ("val_", "val/"),
    ("test_", "test/"),
    ("clean_", "clean/"),
    ("drift_", "drift/"),
    ("rows_", "rows/"),
)
_METRIC_NAMES = {
    "best_epoch": "train/best_epoch",
    "epochs_run": "train/epochs_run",
    "batch_size": "train/batch_size",
    "baseline_rows": "baseline/train_rows",
    "n_features": "features/count",
    "evidence_rows": "test/evidence_rows",
    "roc_auc_rows": "test/roc_auc_rows",
    "quarantine_rate": "rows/quarantine_rate",
}


def metric_key(name: str) -> str:
    """The grouped name a metric has in MLflow (``test_accuracy`` -> ``test/accuracy``)."""
    if name in _METRIC_NAMES:
        return _METRIC_NAMES[name]
    for prefix, group in _METRIC_GROUPS:
        if name.startswith(prefix) and len(name) > len(prefix):
            return group + name[len(prefix) :]
    return name


@_guard
def log_metrics(run_id: str, metrics: dict[str, float], step: int | None = None) -> None:
    """Log finite float metrics at ``step`` in one batch, under their grouped names.

    Non-finite values are skipped. See :func:`metric_key` for the names MLflow shows.
    """
    import math

    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    items = [
        Metric(metric_key(k), float(v), now, step or 0)
        for k, v in sorted(metrics.items())
        if v is not None and math.isfinite(float(v))
    ]
    if items:
        _client().log_batch(run_id, metrics=items)


@_guard
def run_metrics(run_id: str) -> dict[str, float]:
    """A run's metrics (the last value of each) under their MLflow names."""
    return dict(_client().get_run(run_id).data.metrics)


@_guard
def set_tags(run_id: str, tags: dict[str, str]) -> None:
    """Set run tags (values redacted, cut to MLflow's length limit rather than warned about)."""
    from mlflow.entities import RunTag

    items = [RunTag(k, redact(str(v))[:MAX_TAG_LENGTH]) for k, v in tags.items()]
    _client().log_batch(run_id, tags=items)


@_guard
def log_artifact(run_id: str, path: str | Path, artifact_path: str | None = None) -> None:
    """Upload a local file or folder to the run's artifacts."""
    p = Path(path)
    if p.is_dir():
        _client().log_artifacts(run_id, str(p), artifact_path)
    else:
        _client().log_artifact(run_id, str(p), artifact_path)


@_guard
def log_text(run_id: str, text: str, artifact_file: str) -> None:
    """Store ``text`` as an artifact file (secrets redacted)."""
    _client().log_text(run_id, redact(text), artifact_file)


@_guard
def log_dict(run_id: str, data: Any, artifact_file: str) -> None:
    """Store JSON-serialisable ``data`` as an artifact file (secrets redacted)."""
    from mlpipe.secrets import redact_obj

    _client().log_dict(run_id, redact_obj(data), artifact_file)


@_guard
def log_table(run_id: str, frame: pd.DataFrame, artifact_file: str) -> None:
    """Store a frame as an MLflow table artifact (shown as a table in the UI)."""
    _client().log_table(run_id, data=frame, artifact_file=artifact_file)


@_guard
def load_dict(run_id: str, artifact_file: str) -> Any | None:
    """Read a JSON artifact of a run; ``None`` when the run has no such artifact."""
    from mlflow.artifacts import download_artifacts

    with scratch_dir() as tmp:
        try:
            local = download_artifacts(run_id=run_id, artifact_path=artifact_file, dst_path=tmp)
        except Exception as err:  # MLflow raises several types for an absent artifact
            if is_outage(err):
                raise
            return None
        return json.loads(Path(local).read_text())


# Rows of a logged dataset that MLflow sees (its own digest hashes the first 10,000 too).
DATASET_SAMPLE_ROWS = 10_000


def _dataset_source(source: str, query: str | None) -> Any:
    """What MLflow records as the dataset's source: the path or URL, or the database query.

    MLflow resolves plain paths, built-in names and http(s) URLs itself; a database URL (or
    any scheme it has no resolver for) is recorded as a code source holding the URL (redacted)
    and the query.
    """
    from mlflow.data.code_dataset_source import CodeDatasetSource
    from mlflow.data.dataset_source_registry import resolve_dataset_source

    if query is None:
        try:
            return resolve_dataset_source(source)
        except Exception:
            pass
    tags = {"url": source} if query is None else {"url": source, "query": query[:MAX_TAG_LENGTH]}
    return CodeDatasetSource(tags=tags)


@_guard
def log_dataset(
    run_id: str,
    frame: pd.DataFrame,
    *,
    source: str,
    name: str,
    target: str | None,
    context: str,
    digest: str,
    rows: int | None = None,
    query: str | None = None,
) -> None:
    """Record the input dataset on the run (``log_input``) plus its full-content digest tag.

    Args:
        run_id: The run.
        frame: The table, or a sample of it (MLflow stores its schema and profile).
        source: Where the data came from (a path or a built-in name); redacted.
        name: Dataset name.
        target: Target column, if any.
        context: ``training`` or ``inference``.
        digest: Full-content SHA-256 (MLflow's own digest covers only the first rows).
        rows: Rows of the whole table, when known (``frame`` may be a sample).
        query: The SQL that produced the table (a database source), logged with it.
    """
    import warnings

    from mlflow.data.pandas_dataset import from_pandas
    from mlflow.entities import DatasetInput, InputTag

    with warnings.catch_warnings():
        # A plain name like "digits" matches several source types; integer columns get a hint
        # about missing values that only matters for model signatures.
        warnings.filterwarnings("ignore", message="The specified dataset source")
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
        # MLflow profiles what it is given; the schema and a sample are what the UI shows, and
        # the full-content digest (below) identifies the data.
        dataset = from_pandas(
            frame.head(DATASET_SAMPLE_ROWS),
            source=_dataset_source(redact(source), query),
            name=name,
            targets=target,
        )
        entity = dataset._to_mlflow_entity()
    input_tags = [InputTag(key="mlflow.data.context", value=context)]
    _retry_on_conflict(
        lambda: _client().log_inputs(run_id, datasets=[DatasetInput(entity, input_tags)])
    )
    tags = {"mlpipe.dataset.digest": digest, "mlpipe.dataset.source": redact(source)}
    if query is not None:
        tags["mlpipe.dataset.query"] = query
    if rows is not None:
        tags["mlpipe.dataset.rows"] = str(rows)
    set_tags(run_id, tags)


def git_info(path: str | Path) -> dict[str, str]:
    """Commit and dirty flag of the git work tree holding ``path`` (``unknown`` outside git)."""
    cwd = Path(path)
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return {"mlpipe.git.commit": "unknown", "mlpipe.git.dirty": "unknown"}
    return {
        "mlpipe.git.commit": commit,
        "mlpipe.git.dirty": str(bool(status)).lower(),
        "mlflow.source.git.commit": commit,
    }


@dataclass(frozen=True)
class Champion:
    """The version currently holding the ``champion`` alias."""

    version: str
    run_id: str
    tags: dict[str, str]


@_guard
def log_pyfunc_model(
    run_id: str,
    *,
    python_model: Any,
    artifacts: dict[str, str],
    code_paths: list[str],
    signature: Any,
    input_example: pd.DataFrame,
    pip_requirements: list[str],
    model_config: dict[str, Any],
) -> str:
    """Log a pyfunc model to the run (in the run's experiment) and return its ``models:/`` URI.

    The fluent ``with mlflow.start_run(run_id)`` would end the run (FINISHED) on exit while the
    flow still has stages to go; without an active run, MLflow would file the model under the
    Default experiment. So the model is created in the run's experiment first, then logged to
    it with ``Model.log`` and an explicit ``run_id``.
    """
    import mlflow
    from mlflow.models import Model

    experiment = _client().get_run(run_id).info.experiment_id
    logged = mlflow.initialize_logged_model(
        name="model", source_run_id=run_id, experiment_id=experiment
    )
    info = Model.log(
        artifact_path=None,
        name="model",
        flavor=mlflow.pyfunc,
        run_id=run_id,
        model_id=logged.model_id,
        python_model=python_model,
        artifacts=artifacts,
        code_paths=code_paths,
        signature=signature,
        input_example=input_example,
        pip_requirements=pip_requirements,
        model_config=model_config,
        flavor_name="pyfunc.ModelFromCode",
    )
    return str(info.model_uri)


@_guard
def register_version(model_uri: str, name: str, run_id: str, tags: dict[str, str]) -> str:
    """Register ``model_uri`` as a new version of ``name`` and return the version number."""
    import mlflow

    # register_model resolves a logged model's `models:/m-...` URI to its model id, which a
    # tracking server requires (the local store accepts the bare URI, a server does not).
    safe = {k: redact(str(v))[:MAX_TAG_LENGTH] for k, v in tags.items()}
    mv = mlflow.register_model(model_uri, name, tags=safe)
    if str(mv.run_id) != run_id:
        raise RegistryError(f"registered {name} v{mv.version} points at run {mv.run_id}")
    return str(mv.version)


def _alias_version(name: str, alias: str = CHAMPION) -> str | None:
    try:
        return str(_client().get_model_version_by_alias(name, alias).version)
    except Exception as err:
        if is_outage(err):
            raise
        return None


@_guard
def champion(name: str) -> Champion | None:
    """The version holding the ``champion`` alias of ``name``, or ``None``."""
    try:
        mv = _client().get_model_version_by_alias(name, CHAMPION)
    except Exception as err:
        if is_outage(err):
            raise
        return None
    return Champion(version=str(mv.version), run_id=str(mv.run_id), tags=dict(mv.tags))


@contextlib.contextmanager
def registry_lock(name: str, timeout: float = 300.0, lease: float = 120.0) -> Iterator[None]:
    """Hold the registry-wide lock of model ``name`` (across processes and machines).

    The lock is a registered model ``<name>.mlpipe-lock``: the registry's unique-name
    constraint makes creating it atomic on every backend (SQLite, PostgreSQL, a tracking
    server). It is held only while an alias moves (milliseconds); a lock left by a killed
    process is broken when its lease expires or its process is gone.

    Raises:
        RegistryError: Not acquired within ``timeout`` seconds.
    """
    client = _client()
    lock = f"{name}{LOCK_SUFFIX}"
    me = f"{owner()}:{uuid.uuid4().hex[:8]}"
    deadline = time.monotonic() + timeout
    while True:
        tags = {"mlpipe.lock.holder": me, "mlpipe.lock.expires": f"{time.time() + lease:.3f}"}
        try:
            _guarded_call(
                functools.partial(
                    client.create_registered_model,
                    lock,
                    tags=tags,
                    description=f"mlpipe: held while an alias of {name} moves",
                )
            )
            break
        except MlpipeError:
            raise
        except Exception as err:
            if not _already_exists(err):
                raise
        _break_if_stale(client, lock)
        if time.monotonic() > deadline:
            raise RegistryError(f"could not lock model '{name}' within {timeout:.0f}s")
        time.sleep(0.05 + random.random() * 0.2)
    try:
        yield
    finally:
        best_effort(client.delete_registered_model, lock)


def _break_if_stale(client: Any, lock: str) -> None:
    try:
        held = client.get_registered_model(lock)
    except Exception as err:
        if is_outage(err):
            raise _outage_error(err) from None
        return  # released meanwhile
    holder = held.tags.get("mlpipe.lock.holder", "")
    expired = time.time() > float(held.tags.get("mlpipe.lock.expires") or 0)
    if expired or owner_alive(holder.rsplit(":", 1)[0]) is False:
        again = client.get_registered_model(lock)
        if again.tags.get("mlpipe.lock.holder") == holder:
            with contextlib.suppress(Exception):
                client.delete_registered_model(lock)


_UNSET = object()


@_guard
def move_alias(
    name: str,
    version: str,
    reason: str,
    *,
    run_id: str | None = None,
    expected: object = _UNSET,
    compared_with: str | None = None,
    alias: str = CHAMPION,
) -> dict[str, Any] | None:
    """Point ``alias`` at ``version`` and record the move, as a compare-and-set.

    Under :func:`registry_lock`: when ``expected`` is given and the alias no longer points at
    it (another run moved it since this one was judged), nothing changes and ``None`` is
    returned, so the caller re-judges against the new holder. The history is append-only:
    one registered-model tag per move (``mlpipe.alias_move.<n>``: time, alias, from, to, the
    version it was compared with, run and reason).

    Returns:
        The recorded move, or ``None`` when the compare-and-set failed.
    """
    client = _client()
    with registry_lock(name):
        current = _alias_version(name, alias)
        if expected is not _UNSET and current != expected:
            return None
        client.set_registered_model_alias(name, alias, version)
        history = alias_history(name)
        move = {
            "n": len(history) + 1,
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "alias": alias,
            "from": current,
            "to": str(version),
            "compared_with": compared_with,
            "run_id": run_id,
            "reason": redact(reason)[:1000],
        }
        client.set_registered_model_tag(name, f"{HISTORY_TAG}{move['n']:05d}", json.dumps(move))
    return move


@_guard
def alias_history(name: str) -> list[dict[str, Any]]:
    """Every recorded alias move of ``name``, oldest first."""
    model = _client().get_registered_model(name)
    moves = [json.loads(v) for k, v in model.tags.items() if k.startswith(HISTORY_TAG)]
    return sorted(moves, key=lambda m: int(m["n"]))


@_guard
def list_models() -> list[Any]:
    """All registered models (MLflow entities), without mlpipe's lock entries."""
    models = _client().search_registered_models()
    return [m for m in models if not str(m.name).endswith(LOCK_SUFFIX)]


@_guard
def model_exists(name: str) -> bool:
    """Whether a registered model ``name`` exists."""
    try:
        _client().get_registered_model(name)
    except Exception as err:
        if is_outage(err):
            raise
        return False
    return True


@_guard
def aliases(name: str) -> dict[str, list[str]]:
    """Aliases per version of ``name`` (version search results do not carry them)."""
    out: dict[str, list[str]] = {}
    for alias, version in _client().get_registered_model(name).aliases.items():
        out.setdefault(str(version), []).append(alias)
    return out


@_guard
def model_versions(name: str) -> list[Any]:
    """All versions of ``name``, newest first."""
    escaped = name.replace("'", "\\'")
    versions = _client().search_model_versions(f"name='{escaped}'")
    return sorted(versions, key=lambda v: int(v.version), reverse=True)


@_guard
def version_info(name: str, version: str | None = None) -> Any:
    """A model version by number, or the champion when ``version`` is None.

    Raises:
        RegistryError: No such model, version or champion.
    """
    client = _client()
    try:
        if version is None:
            return client.get_model_version_by_alias(name, CHAMPION)
        return client.get_model_version(name, str(version))
    except Exception as err:
        if is_outage(err):
            raise
        if not model_exists(name):
            raise RegistryError(f"model '{name}' is not registered") from None
        which = f"version {version}" if version else "champion"
        raise RegistryError(f"model '{name}' has no {which} in the registry") from None


@_guard
def set_version_tags(name: str, version: str, tags: dict[str, str]) -> None:
    """Set tags on a model version (values redacted)."""
    client = _client()
    for k, v in tags.items():
        client.set_model_version_tag(name, version, k, redact(str(v)))


@_guard
def set_version_description(name: str, version: str, markdown: str) -> None:
    """Set a model version's description (Markdown: the version page renders it)."""
    _client().update_model_version(name, version, description=redact(markdown)[:5000])


@_guard
def ui_link(run_id: str, artifact: str | None = None) -> str:
    """A link within the MLflow UI to a run, or to one of its artifacts (``#/...``)."""
    experiment = _client().get_run(run_id).info.experiment_id
    page = f"#/experiments/{experiment}/runs/{run_id}"
    return f"{page}/artifactPath/{artifact}" if artifact else page


def eligibility(version: Any) -> tuple[bool, str]:
    """Whether a model version may hold ``champion``: smoke test and gate passed.

    Args:
        version: An MLflow model version entity.

    Returns:
        ``(eligible, why)``.
    """
    tags = dict(version.tags)
    if tags.get(ELIGIBLE_TAG) == "true":
        return True, "smoke test and gate passed"
    reason = tags.get(ELIGIBLE_REASON_TAG) or f"decision: {tags.get(DECISION_TAG, 'unknown')}"
    return False, reason


@_guard
def fail_pending_versions(run_id: str, reason: str) -> list[str]:
    """Mark versions registered by ``run_id`` that no gate judged as failed and ineligible.

    A version killed mid-promotion (``promoting``: judged eligible, alias move under way) keeps
    its eligibility and is recorded as promoted or not by where ``champion`` points.
    """
    failed = []
    for mv in _client().search_model_versions(f"run_id='{run_id}'"):
        state = dict(mv.tags).get(DECISION_TAG, "pending")
        if state == PROMOTING:
            won = _alias_version(mv.name) == str(mv.version)
            outcome = "promoted" if won else "not promoted"
            set_version_tags(
                mv.name,
                str(mv.version),
                {DECISION_TAG: outcome, "mlpipe.decision.reason": f"{outcome}; {reason}"[:5000]},
            )
        elif state == "pending":
            set_version_tags(
                mv.name,
                str(mv.version),
                {
                    DECISION_TAG: "failed",
                    ELIGIBLE_TAG: "false",
                    ELIGIBLE_REASON_TAG: reason[:500],
                    "mlpipe.decision.reason": reason[:5000],
                },
            )
            failed.append(f"{mv.name} v{mv.version}")
    return failed


@dataclass(frozen=True)
class Recovered:
    """A run left RUNNING by a process that no longer exists, now marked FAILED."""

    run_id: str
    flow_run_id: str | None
    versions: list[str]


@_guard
def recover_abandoned(max_age_hours: float = 24.0) -> list[Recovered]:
    """Mark runs whose process was killed as FAILED, and their pending versions as failed.

    A RUNNING run whose owner process ran on this machine and is gone was abandoned; one from
    another machine is abandoned when it started more than ``max_age_hours`` ago.

    Returns:
        What was recovered (the Prefect flow run ids let the caller close those too).
    """
    client = _client()
    experiments = [e.experiment_id for e in client.search_experiments()]
    if not experiments:
        return []
    now_ms = time.time() * 1000
    recovered = []
    runs = client.search_runs(experiments, "attributes.status = 'RUNNING'", max_results=1000)
    for run in runs:
        tags = run.data.tags
        identity = tags.get(OWNER_TAG)
        if not identity:
            continue
        alive = owner_alive(identity)
        too_old = now_ms - run.info.start_time > max_age_hours * 3_600_000
        if alive or (alive is None and not too_old):
            continue
        why = (
            f"abandoned: process {identity.rsplit(':', 1)[0]} ended without closing the "
            "run (killed?)"
        )
        set_tags(run.info.run_id, {ERROR_TAG: why, "mlpipe.recovered": "true"})
        end_run(run.info.run_id, failed=True)
        versions = fail_pending_versions(run.info.run_id, why)
        recovered.append(Recovered(run.info.run_id, tags.get(FLOW_RUN_TAG), versions))
    return recovered


def scratch_dir() -> Any:
    """A temporary folder for files on their way to MLflow."""
    import tempfile

    return tempfile.TemporaryDirectory(prefix="mlpipe-")


@_guard
def load_pyfunc(uri: str) -> Any:
    """Load a registered model (``models:/NAME/VERSION``) as an MLflow pyfunc."""
    import mlflow

    return mlflow.pyfunc.load_model(uri)


def download_model(uri: str, folder: str | Path) -> str:
    """Copy a registered model's files into ``folder`` (for processes without the server)."""
    import mlflow

    Path(folder).mkdir(parents=True, exist_ok=True)
    return str(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(folder)))


@functools.lru_cache(maxsize=2)
def load_downloaded(folder: str) -> Any:
    """A model copied by :func:`download_model`, loaded once per process.

    A Dask worker scores many partitions with it.
    """
    import mlflow

    return mlflow.pyfunc.load_model(folder)


def signature(example: pd.DataFrame, output: pd.DataFrame) -> Any:
    """The model signature inferred from an input example and its predictions."""
    import warnings

    from mlflow.models import infer_signature

    with warnings.catch_warnings():
        # Integer class labels in the output trigger a hint about missing values in inputs.
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
        return infer_signature(example, output)


def current_uri() -> str:
    """The tracking URI this process configured (for child processes)."""
    return str(_state.get("uri") or resolve_uri())


@_guard
def log_input_file(
    run_id: str,
    path: Path,
    name: str,
    digest: str,
    encoding: str = "auto",
    source: str | None = None,
    sample_rows: int = 1000,
) -> None:
    """Record an input file on a run (``log_input`` with its schema from the first rows).

    ``source``: where the file came from, when ``path`` is a local copy (a URL).
    """
    from mlpipe.io.tables import head

    sample = head(path, sample_rows, encoding)
    log_dataset(
        run_id,
        sample,
        source=source if source and "://" in source else str(path.resolve()),
        name=name,
        target=None,
        context="inference",
        digest=digest,
        rows=None,
    )
