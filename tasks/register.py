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
    """The registered version and the champion decision."""

    model_config = ConfigDict(frozen=True)

    model_name: str
    version: str
    model_uri: str
    promoted: bool
    reason: str
    champion_version: str


class Decision(BaseModel):
    """Whether a new version takes the `champion` alias, and why."""

    model_config = ConfigDict(frozen=True)

    promote: bool
    reason: str


def decide_promotion(
    metric: str, new: float, current: tracking.Champion | None, higher_is_better: bool
) -> Decision:
    """Promote the first version, or a later one only if strictly better on ``metric``.

    Args:
        metric: Name of the primary metric.
        new: The new version's value.
        current: The current champion (``None`` when there is none).
        higher_is_better: Direction of the metric.

    Returns:
        The decision with a human-readable reason.
    """
    if current is None:
        return Decision(promote=True, reason="first version of this model: becomes champion")
    if current.metric is None:
        return Decision(
            promote=True,
            reason=f"champion v{current.version} has no {metric} recorded: replaced",
        )
    better = new > current.metric if higher_is_better else new < current.metric
    comparison = f"{metric} {new:.6f} vs champion v{current.version} {current.metric:.6f}"
    if better:
        return Decision(promote=True, reason=f"better: {comparison}")
    return Decision(promote=False, reason=f"not better: {comparison}")


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
    """Log the pyfunc, register a version, move `champion` only if the new one is better."""
    from mlflow.models import infer_signature

    log = logger("register")
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
    current = tracking.champion(model_name, evaluation.primary_metric)
    decision = decide_promotion(
        evaluation.primary_metric, evaluation.primary_value, current, evaluation.higher_is_better
    )
    tags = {
        "mlpipe.primary_metric": evaluation.primary_metric,
        "mlpipe.primary_value": f"{evaluation.primary_value:.6f}",
        "mlpipe.dataset.digest": digest,
        "mlpipe.architecture": network.architecture,
        "mlpipe.decision": "promoted" if decision.promote else "not promoted",
        "mlpipe.decision.reason": decision.reason,
    }
    version = tracking.register_version(uri, model_name, run.run_id, tags)
    if decision.promote:
        tracking.set_champion(model_name, version)
    champion_version = version if decision.promote else (current.version if current else version)
    tracking.set_tags(
        run.run_id,
        {
            "mlpipe.model.name": model_name,
            "mlpipe.model.version": version,
            "mlpipe.decision": tags["mlpipe.decision"],
            "mlpipe.decision.reason": decision.reason,
        },
    )
    tracking.log_dict(
        run.run_id,
        {"model": model_name, "version": version, **decision.model_dump()},
        "registry/decision.json",
    )
    log.info(
        "registered %s v%s; %s (champion: v%s)",
        model_name,
        version,
        decision.reason,
        champion_version,
    )
    return Registration(
        model_name=model_name,
        version=version,
        model_uri=f"models:/{model_name}/{version}",
        promoted=decision.promote,
        reason=decision.reason,
        champion_version=champion_version,
    )
