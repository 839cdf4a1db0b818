"""Load a registered model by URI and score rows, in a fresh Python process.

A model that cannot be loaded and used outside the training process must not become champion.
The check runs in a separate interpreter that never imports the training code (the model brings
its own ``mlpipe_serving``). To keep it cheap, that interpreter can be started when a run opens
(:func:`prestart`): it imports the runtime libraries (MLflow, torch, pandas, scikit-learn) while
the run trains, then waits for the model URI on stdin. It still has never seen the model.

Run by hand as ``python -m mlpipe.smoke MODEL_URI ROWS.parquet``.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from mlpipe.io.processes import die_with_parent

# Imported ahead by a pre-started interpreter: libraries, never mlpipe's serving or training code.
RUNTIME_MODULES = ("numpy", "pandas", "sklearn", "joblib", "torch", "mlflow", "mlflow.pyfunc")
_lock = threading.Lock()
_ready: dict[str, tuple[subprocess.Popen[str], tempfile.TemporaryDirectory[str]]] = {}


def _start(tracking_uri: str) -> tuple[subprocess.Popen[str], tempfile.TemporaryDirectory[str]]:
    # Registry and tracking both explicit: a registry URI inherited from the environment
    # (MLflow exports the one it was last given) may point at another store.
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri, "MLFLOW_REGISTRY_URI": tracking_uri,
           "PYTHONWARNINGS": "ignore"}  # fmt: skip
    elsewhere = tempfile.TemporaryDirectory(prefix="mlpipe-smoke-")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlpipe.smoke", "--serve"],
        cwd=elsewhere.name, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, preexec_fn=die_with_parent,
    )  # fmt: skip
    return proc, elsewhere


def prestart(tracking_uri: str) -> None:
    """Start the smoke-test interpreter now, so its imports overlap with training."""
    with _lock:
        if tracking_uri not in _ready:
            _ready[tracking_uri] = _start(tracking_uri)


def discard() -> None:
    """Stop pre-started interpreters that were not used (a run failed before its smoke test)."""
    with _lock:
        started = list(_ready.values())
        _ready.clear()
    for proc, folder in started:
        proc.kill()
        proc.communicate()
        folder.cleanup()


def run_in_fresh_process(
    model_uri: str, rows_path: str, tracking_uri: str, timeout: float = 600
) -> tuple[bool, str]:
    """Score ``rows_path`` with ``model_uri`` in a new interpreter started in an empty folder.

    Uses the pre-started interpreter when there is one; the child dies with this process, so a
    killed run leaves no smoke test behind.

    Returns:
        ``(ok, detail)``: the JSON summary on success, the end of stderr on failure.
    """
    with _lock:
        started = _ready.pop(tracking_uri, None)
    proc, folder = started if started and started[0].poll() is None else _start(tracking_uri)
    request = json.dumps({"model_uri": model_uri, "rows": str(Path(rows_path).resolve())})
    try:
        out, err = proc.communicate(request + "\n", timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return False, f"timed out after {timeout:.0f}s"
    finally:
        folder.cleanup()
    if proc.returncode != 0:
        return False, err.strip()[-2000:] or f"exit code {proc.returncode}"
    return True, out.strip().splitlines()[-1]


def check(model_uri: str, rows_path: str) -> int:
    """Load, predict, check the output's shape and values; print one JSON line."""
    import mlflow
    import numpy as np
    import pandas as pd

    rows = pd.read_parquet(rows_path)
    out = mlflow.pyfunc.load_model(model_uri).predict(rows)
    if len(out) != len(rows) or "prediction" not in out.columns:
        print(f"bad output: {len(out)} rows, columns {list(out.columns)}", file=sys.stderr)
        return 1
    if out["prediction"].isna().any():
        print("some predictions are missing (NaN)", file=sys.stderr)
        return 1
    proba = out[[c for c in out.columns if c.startswith("proba_")]].to_numpy(dtype=float)
    if proba.size and not (
        np.isfinite(proba).all() and np.allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    ):
        print("class probabilities are not finite or do not sum to 1", file=sys.stderr)
        return 1
    print(json.dumps({"rows": len(out), "columns": list(out.columns)}))
    return 0


def main(argv: list[str]) -> int:
    """``--serve``: import the runtime libraries, then check the request read from stdin."""
    if argv == ["--serve"]:
        import importlib

        for name in RUNTIME_MODULES:
            importlib.import_module(name)
        uri = os.environ["MLFLOW_TRACKING_URI"]
        local = uri.removeprefix("sqlite:///")
        if local == uri or Path(local).exists():
            # Warm MLflow's store and registry clients too, but never create a store: the run
            # does that (under a lock), from its own working directory.
            with contextlib.suppress(Exception):
                from mlpipe.io import tracking

                tracking.configure(uri)
        line = sys.stdin.readline()
        if not line.strip():
            return 0  # discarded before use
        request = json.loads(line)
        return check(request["model_uri"], request["rows"])
    model_uri, rows_path = argv
    return check(model_uri, rows_path)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
