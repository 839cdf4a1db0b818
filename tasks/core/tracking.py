"""The one place that talks to MLflow: runs, params, metrics, artifacts, registry, aliases.

Every function takes an explicit ``run_id`` instead of relying on MLflow's thread-local active
run, so tasks behave the same in threads, processes or Dask workers. Nothing happens at import.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure
    from mlflow.entities.model_registry import ModelVersion

CHAMPION = "champion"
DEFAULT_DB = "mlflow.db"
DEFAULT_ARTIFACTS = "mlruns"


def resolve_uri(uri: str | None = None) -> str:
    """Pick the tracking URI: explicit, else ``MLFLOW_TRACKING_URI``, else local SQLite in cwd."""
    if uri:
        return uri
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return f"sqlite:///{Path.cwd() / DEFAULT_DB}"


def configure(uri: str | None = None) -> str:
    """Point MLflow tracking and registry at ``resolve_uri(uri)`` and return it."""
    import mlflow

    resolved = resolve_uri(uri)
    mlflow.set_tracking_uri(resolved)
    mlflow.set_registry_uri(resolved)
    return resolved


def _client() -> Any:
    from mlflow import MlflowClient

    return MlflowClient()


def _experiment_id(name: str, tracking_uri: str) -> str:
    client = _client()
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return str(exp.experiment_id)
    location = None
    if tracking_uri.startswith("sqlite:///") or "://" not in tracking_uri:
        # Local store: artifacts beside the database, absolute so `mlflow server` finds them.
        base = Path(tracking_uri.removeprefix("sqlite:///")).parent
        location = (base / DEFAULT_ARTIFACTS).resolve().as_uri()
    # Tell the MLflow 3 UI this is model training, so it opens on runs, not the GenAI view.
    tags = {"mlflow.experimentKind": "custom_model_development"}
    return str(client.create_experiment(name, artifact_location=location, tags=tags))


def start_run(experiment: str, run_name: str, tracking_uri: str, tags: dict[str, str]) -> str:
    """Create a run in ``experiment`` (created if missing) and return its id."""
    client = _client()
    run = client.create_run(_experiment_id(experiment, tracking_uri), run_name=run_name, tags=tags)
    return str(run.info.run_id)


def run_tags(run_id: str) -> dict[str, str]:
    """Tags of a run."""
    return dict(_client().get_run(run_id).data.tags)


def end_run(run_id: str, failed: bool) -> None:
    """Mark a run FINISHED or FAILED."""
    _client().set_terminated(run_id, status="FAILED" if failed else "FINISHED")


def log_params(run_id: str, params: dict[str, str]) -> None:
    """Log string params in batches (MLflow caps a batch at 100 params)."""
    from mlflow.entities import Param

    items = [Param(k, str(v)[:6000]) for k, v in sorted(params.items())]
    client = _client()
    for i in range(0, len(items), 100):
        client.log_batch(run_id, params=items[i : i + 100])


def log_metrics(run_id: str, metrics: dict[str, float], step: int | None = None) -> None:
    """Log finite float metrics at ``step`` in one batch; non-finite values are skipped."""
    import math
    import time

    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    items = [
        Metric(k, float(v), now, step or 0)
        for k, v in sorted(metrics.items())
        if v is not None and math.isfinite(float(v))
    ]
    if items:
        _client().log_batch(run_id, metrics=items)


def set_tags(run_id: str, tags: dict[str, str]) -> None:
    """Set run tags."""
    from mlflow.entities import RunTag

    _client().log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])


def log_artifact(run_id: str, path: str | Path, artifact_path: str | None = None) -> None:
    """Upload a local file or folder to the run's artifacts."""
    p = Path(path)
    if p.is_dir():
        _client().log_artifacts(run_id, str(p), artifact_path)
    else:
        _client().log_artifact(run_id, str(p), artifact_path)


def log_text(run_id: str, text: str, artifact_file: str) -> None:
    """Store ``text`` as an artifact file."""
    _client().log_text(run_id, text, artifact_file)


def log_dict(run_id: str, data: Any, artifact_file: str) -> None:
    """Store JSON-serialisable ``data`` as an artifact file."""
    _client().log_dict(run_id, data, artifact_file)


def log_table(run_id: str, frame: pd.DataFrame, artifact_file: str) -> None:
    """Store a frame as an MLflow table artifact (shown as a table in the UI)."""
    _client().log_table(run_id, data=frame, artifact_file=artifact_file)


def load_dict(run_id: str, artifact_file: str) -> Any | None:
    """Read a JSON artifact of a run; ``None`` when the run has no such artifact."""
    from mlflow.artifacts import download_artifacts

    with scratch_dir() as tmp:
        try:
            local = download_artifacts(run_id=run_id, artifact_path=artifact_file, dst_path=tmp)
        except Exception:  # MLflow raises several types for an absent artifact
            return None
        return json.loads(Path(local).read_text())


def log_figure(run_id: str, figure: Figure, artifact_file: str) -> None:
    """Store a matplotlib figure as a PNG artifact."""
    _client().log_figure(run_id, figure, artifact_file)


def frame_digest(frame: pd.DataFrame) -> str:
    """SHA-256 over every row, the column names and dtypes.

    MLflow's own dataset digest hashes only the first 10,000 rows; this one covers the whole
    content, independent of the file format it came from.
    """
    import pandas as pd

    h = hashlib.sha256()
    h.update(json.dumps([[str(c), str(t)] for c, t in frame.dtypes.items()]).encode())
    h.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return h.hexdigest()


def log_dataset(
    run_id: str,
    frame: pd.DataFrame,
    *,
    source: str,
    name: str,
    target: str | None,
    context: str,
    digest: str,
) -> None:
    """Record the input dataset on the run (``log_input``) plus its full-content digest tag."""
    import warnings

    from mlflow.data.pandas_dataset import from_pandas
    from mlflow.entities import DatasetInput, InputTag

    with warnings.catch_warnings():
        # A plain name like "digits" matches several source types; integer columns get a hint
        # about missing values that only matters for model signatures.
        warnings.filterwarnings("ignore", message="The specified dataset source")
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
        dataset = from_pandas(frame, source=source, name=name, targets=target)
        entity = dataset._to_mlflow_entity()
    tags = [InputTag(key="mlflow.data.context", value=context)]
    _client().log_inputs(run_id, datasets=[DatasetInput(entity, tags)])
    set_tags(run_id, {"mlpipe.dataset.digest": digest, "mlpipe.dataset.rows": str(len(frame))})


def file_digest(path: Path) -> str:
    """SHA-256 of a file, read in 1 MiB blocks (inputs may not fit in memory)."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def log_input_file(
    run_id: str, path: Path, name: str, digest: str, sample_rows: int = 1000
) -> None:
    """Record an input file on a run (``log_input`` with its schema from the first rows)."""
    import pandas as pd

    if path.suffix.lower() in {".parquet", ".pq"}:
        import pyarrow.parquet as pq

        batches = pq.ParquetFile(path).iter_batches(batch_size=sample_rows)
        head = next(batches).to_pandas()
    else:
        head = pd.read_csv(path, nrows=sample_rows)
    source = str(path.resolve())
    log_dataset(run_id, head, source=source, name=name, target=None, context="inference",
                digest=digest)  # fmt: skip


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
    metric: float | None


def log_pyfunc_model(
    run_id: str,
    *,
    python_model: Any,
    artifacts: dict[str, str],
    code_paths: list[str],
    signature: Any,
    input_example: pd.DataFrame,
    pip_requirements: list[str],
) -> str:
    """Log a pyfunc model to the run and return its ``models:/`` URI."""
    import mlflow

    with mlflow.start_run(run_id=run_id):
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=python_model,
            artifacts=artifacts,
            code_paths=code_paths,
            signature=signature,
            input_example=input_example,
            pip_requirements=pip_requirements,
        )
    return str(info.model_uri)


def register_version(model_uri: str, name: str, run_id: str, tags: dict[str, str]) -> str:
    """Register ``model_uri`` as a new version of ``name`` and return the version number."""
    client = _client()
    try:
        client.get_registered_model(name)
    except Exception:
        client.create_registered_model(
            name, description="Registered by mlpipe: preprocessing + network, raw rows in."
        )
    import mlflow

    # register_model resolves a logged model's `models:/m-...` URI to its model id, which a
    # tracking server requires (the local store accepts the bare URI, a server does not).
    mv = mlflow.register_model(model_uri, name, tags=tags)
    if str(mv.run_id) != run_id:
        raise RuntimeError(f"registered {name} v{mv.version} points at run {mv.run_id}")
    return str(mv.version)


def champion(name: str, metric: str | None = None) -> Champion | None:
    """The version holding the ``champion`` alias of ``name`` and its run's ``metric``."""
    client = _client()
    try:
        mv: ModelVersion = client.get_model_version_by_alias(name, CHAMPION)
    except Exception:
        return None
    value = None
    if mv.run_id and metric:
        value = client.get_run(mv.run_id).data.metrics.get(metric)
    return Champion(version=str(mv.version), run_id=str(mv.run_id), metric=value)


HISTORY_TAG = "mlpipe.alias_move."


def move_alias(name: str, version: str, reason: str, run_id: str | None = None,
               alias: str = CHAMPION) -> dict[str, Any]:  # fmt: skip
    """Point ``alias`` at ``version`` and record the move in the model's history.

    The history is append-only: one registered-model tag per move
    (``mlpipe.alias_move.<n>``, JSON with time, alias, from, to, run and reason), so it shows
    in the MLflow UI and survives any number of moves.

    Returns:
        The recorded move.
    """
    import time

    client = _client()
    try:
        previous: str | None = str(client.get_model_version_by_alias(name, alias).version)
    except Exception:  # no alias yet
        previous = None
    client.set_registered_model_alias(name, alias, version)
    history = alias_history(name)
    move = {
        "n": len(history) + 1,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "alias": alias,
        "from": previous,
        "to": str(version),
        "run_id": run_id,
        "reason": reason[:1000],
    }
    client.set_registered_model_tag(name, f"{HISTORY_TAG}{move['n']:05d}", json.dumps(move))
    return move


def alias_history(name: str) -> list[dict[str, Any]]:
    """Every recorded alias move of ``name``, oldest first."""
    model = _client().get_registered_model(name)
    moves = [json.loads(v) for k, v in model.tags.items() if k.startswith(HISTORY_TAG)]
    return sorted(moves, key=lambda m: int(m["n"]))


def list_models() -> list[Any]:
    """All registered models (MLflow entities)."""
    return list(_client().search_registered_models())


def aliases(name: str) -> dict[str, list[str]]:
    """Aliases per version of ``name`` (version search results do not carry them)."""
    out: dict[str, list[str]] = {}
    for alias, version in _client().get_registered_model(name).aliases.items():
        out.setdefault(str(version), []).append(alias)
    return out


def model_versions(name: str) -> list[Any]:
    """All versions of ``name``, newest first."""
    versions = _client().search_model_versions(f"name='{name}'")
    return sorted(versions, key=lambda v: int(v.version), reverse=True)


def version_info(name: str, version: str | None = None) -> Any:
    """A model version by number, or the champion when ``version`` is None."""
    client = _client()
    if version is None:
        return client.get_model_version_by_alias(name, CHAMPION)
    return client.get_model_version(name, version)


def set_version_tags(name: str, version: str, tags: dict[str, str]) -> None:
    """Set tags on a model version."""
    client = _client()
    for k, v in tags.items():
        client.set_model_version_tag(name, version, k, str(v))


def scratch_dir() -> tempfile.TemporaryDirectory[str]:
    """A temporary folder for files on their way to MLflow."""
    return tempfile.TemporaryDirectory(prefix="mlpipe-")
