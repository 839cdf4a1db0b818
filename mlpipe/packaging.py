"""What goes into a registered model: the serving code, exact pins, an input example, hashes."""

from __future__ import annotations

import contextlib
import shutil
import sys
from collections.abc import Iterator
from importlib.metadata import version as installed_version
from pathlib import Path

import pandas as pd

from mlpipe.serving.predictor import PARTS, sha256_file
from mlpipe.serving.schema import Schema

SERVING_DIR = Path(__file__).resolve().parent / "serving"
# The name the serving code has inside a model; never "mlpipe" or "tasks", so a model cannot
# shadow (or be shadowed by) the training code base.
SERVING_PACKAGE = "mlpipe_serving"
MODEL_CODE = SERVING_DIR / "model_code.py"
SERVING_REQUIREMENTS = ("torch", "scikit-learn", "pandas", "numpy", "mlflow", "joblib", "pydantic")
INPUT_EXAMPLE_ROWS = 5


def pip_requirements() -> list[str]:
    """Exact pins of what the served model imports (no slow requirement inference)."""
    pins = []
    for package in SERVING_REQUIREMENTS:
        pinned = installed_version(package).split("+")[0]  # torch "2.13.0+cpu" -> "2.13.0"
        pins.append(f"{package}=={pinned}")
    return pins


@contextlib.contextmanager
def staged_serving_code(folder: Path) -> Iterator[str]:
    """Copy ``mlpipe/serving`` into ``folder/mlpipe_serving`` and make it importable meanwhile.

    MLflow runs the model's code while logging it (to check the input example), so the staged
    package is on ``sys.path`` for the duration.

    Yields:
        The staged package folder, for ``code_paths``.
    """
    target = folder / SERVING_PACKAGE
    target.mkdir(parents=True)
    for source in sorted(SERVING_DIR.glob("*.py")):
        if source.name != MODEL_CODE.name:
            shutil.copy(source, target / source.name)
    sys.path.insert(0, str(folder))
    try:
        yield str(target)
    finally:
        sys.path.remove(str(folder))
        for name in [m for m in sys.modules if m.split(".")[0] == SERVING_PACKAGE]:
            del sys.modules[name]


def artifact_files(predictor_dir: str | Path) -> dict[str, str]:
    """The model's artifact files by role."""
    return {role: str(Path(predictor_dir) / name) for role, name in PARTS.items()}


def artifact_hashes(files: dict[str, str]) -> dict[str, str]:
    """SHA-256 of each artifact, recorded with the model and checked on every load."""
    return {role: sha256_file(path) for role, path in files.items()}


def input_example(test: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    """A few raw test rows (features only), preferring rows that contain missing values."""
    rows = test[schema.features]
    with_nan = rows[rows.isna().any(axis=1)]
    picked = pd.concat([with_nan.head(2), rows]).drop_duplicates().head(INPUT_EXAMPLE_ROWS)
    return picked.reset_index(drop=True)
