"""Load a registered model by URI and score rows, in a fresh Python process.

Run as ``python -m tasks.core.smoke MODEL_URI ROWS.parquet``; prints one JSON line with the rows
scored and the output columns, and exits non-zero on any failure. A model that cannot be loaded
and used outside the training process must not become champion.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np


def run_in_fresh_process(
    model_uri: str, rows_path: str, tracking_uri: str, timeout: float = 600
) -> tuple[bool, str]:
    """Score ``rows_path`` with ``model_uri`` in a new interpreter started in an empty folder.

    Returns:
        ``(ok, detail)``: the JSON summary on success, the end of stderr on failure.
    """
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri, "PYTHONWARNINGS": "ignore"}
    rows = str(Path(rows_path).resolve())
    with tempfile.TemporaryDirectory(prefix="mlpipe-smoke-") as elsewhere:
        try:
            done = subprocess.run(
                [sys.executable, "-m", "tasks.core.smoke", model_uri, rows],
                cwd=elsewhere, env=env, capture_output=True, text=True, timeout=timeout,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            return False, f"timed out after {timeout:.0f}s"
    if done.returncode != 0:
        return False, done.stderr.strip()[-2000:] or f"exit code {done.returncode}"
    return True, done.stdout.strip().splitlines()[-1]


def main(argv: list[str]) -> int:
    """Load, predict, check the output's shape and values."""
    import mlflow
    import pandas as pd

    model_uri, rows_path = argv
    rows = pd.read_parquet(rows_path)
    out = mlflow.pyfunc.load_model(model_uri).predict(rows)
    if len(out) != len(rows) or "prediction" not in out.columns:
        print(f"bad output: {len(out)} rows, columns {list(out.columns)}", file=sys.stderr)
        return 1
    proba = out[[c for c in out.columns if c.startswith("proba_")]]
    if not proba.empty and not np.allclose(proba.sum(axis=1), 1.0, atol=1e-6):
        print("class probabilities do not sum to 1", file=sys.stderr)
        return 1
    print(json.dumps({"rows": len(out), "columns": list(out.columns)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
