"""Stage: package preprocessing + network as one MLflow pyfunc, register it, decide `champion`."""

from __future__ import annotations

import shutil
import warnings
from importlib.metadata import version as installed_version
from pathlib import Path

import pandas as pd
from prefect import task
from pydantic import BaseModel, ConfigDict

from tasks.core import tracking
from tasks.core.inference import Predictor
from tasks.core.run import RunContext, logger, read_parquet
from tasks.core.schema import Schema
from tasks.evaluate import Evaluation
from tasks.split import Splits
from tasks.train import TrainedNetwork

# Modules the served model imports; shipped with it via code_paths.
SERVING_MODULES = ("nets.py", "inference.py", "schema.py")
SERVING_PACKAGES = ("torch", "scikit-learn", "pandas", "numpy", "mlflow", "joblib", "pydantic")
INPUT_EXAMPLE_ROWS = 5


class Registration(BaseModel):
    """The registered version, not yet judged by the promotion gate."""

    model_config = ConfigDict(frozen=True)

    model_name: str
    version: str
    model_uri: str
    input_example: str


def pip_requirements() -> list[str]:
    """Exact pins of what the served model imports (no slow requirement inference)."""
    pins = []
    for package in SERVING_PACKAGES:
        pinned = installed_version(package).split("+")[0]  # torch "2.13.0+cpu" -> "2.13.0"
        pins.append(f"{package}=={pinned}")
    return pins


def stage_serving_code(folder: Path) -> str:
    """Copy the serving modules into ``folder/tasks`` (importable as ``tasks.core.*``)."""
    core = Path(__file__).resolve().parent / "core"
    target = folder / "tasks" / "core"
    target.mkdir(parents=True)
    (folder / "tasks" / "__init__.py").write_text("")
    (target / "__init__.py").write_text("")
    for name in SERVING_MODULES:
        shutil.copy(core / name, target / name)
    return str(folder / "tasks")


def input_example(test: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    """A few raw test rows (features only), preferring rows that contain missing values."""
    rows = test[schema.features]
    with_nan = rows[rows.isna().any(axis=1)]
    picked = pd.concat([with_nan.head(2), rows]).drop_duplicates().head(INPUT_EXAMPLE_ROWS)
    return picked.reset_index(drop=True)


@task(name="register")
def register_model(
    network: TrainedNetwork,
    evaluation: Evaluation,
    splits: Splits,
    model_name: str,
    digest: str,
    run: RunContext,
) -> Registration:
    """Log the pyfunc (preprocessing + network) and register it as a new, pending version."""
    from mlflow.models import infer_signature

    schema = splits.dataset
    predictor = Predictor.load(network.path)
    example = input_example(read_parquet(splits.test), schema)
    with warnings.catch_warnings():
        # Integer class labels in the output trigger a hint about missing values in inputs.
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
        signature = infer_signature(example, predictor.predict(example))
    artifacts = {
        name: str(Path(network.path) / fname)
        for name, fname in (
            ("preprocessor", "preprocessor.joblib"),
            ("network", "network.pt"),
            ("meta", "meta.json"),
        )
    }
    with tracking.scratch_dir() as tmp:
        uri = tracking.log_pyfunc_model(
            run.run_id,
            python_model=str(Path(__file__).resolve().parent / "core" / "model_code.py"),
            artifacts=artifacts,
            code_paths=[stage_serving_code(Path(tmp))],
            signature=signature,
            input_example=example,
            pip_requirements=pip_requirements(),
        )
    tags = {
        "mlpipe.primary_metric": evaluation.primary_metric,
        "mlpipe.primary_value": f"{evaluation.primary_value:.6f}",
        "mlpipe.dataset.digest": digest,
        "mlpipe.architecture": network.architecture,
        "mlpipe.decision": "pending",
    }
    version = tracking.register_version(uri, model_name, run.run_id, tags)
    example_path = run.path("input_example.parquet")
    example.to_parquet(example_path)
    tracking.set_tags(
        run.run_id, {"mlpipe.model.name": model_name, "mlpipe.model.version": version}
    )
    logger("register").info("registered %s v%s (pending the promotion gate)", model_name, version)
    return Registration(
        model_name=model_name,
        version=version,
        model_uri=f"models:/{model_name}/{version}",
        input_example=str(example_path),
    )
