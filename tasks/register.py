"""Stage: package preprocessing + network as one MLflow pyfunc and register a pending version."""

from __future__ import annotations

import logging
from pathlib import Path

from prefect import task

from mlpipe.handoff import (
    Evaluation,
    LoadedData,
    Registration,
    RunContext,
    Splits,
    TrainedModels,
)
from mlpipe.io import tracking
from mlpipe.io.tables import iter_partitions, write_parquet
from mlpipe.packaging import (
    MODEL_CODE,
    artifact_files,
    artifact_hashes,
    input_example,
    pip_requirements,
    staged_serving_code,
)
from mlpipe.registry import SPLIT_TAG
from mlpipe.serving.predictor import Predictor

log = logging.getLogger("mlpipe.register")


@task(name="register")
def register_model(
    models: TrainedModels,
    evaluation: Evaluation,
    splits: Splits,
    model_name: str,
    data: LoadedData,
    run: RunContext,
) -> Registration:
    """Log the pyfunc (with the SHA-256 of its parts) and register it as a pending version."""
    schema = splits.dataset
    predictor = Predictor.load(models.predictor)
    # The first test partition holds plenty of example rows.
    example = input_example(next(iter_partitions(splits.test)), schema)
    files = artifact_files(models.predictor)
    hashes = artifact_hashes(files)
    with tracking.scratch_dir() as tmp, staged_serving_code(Path(tmp)) as code:
        uri = tracking.log_pyfunc_model(
            run.run_id,
            python_model=str(MODEL_CODE),
            artifacts=files,
            code_paths=[code],
            signature=tracking.signature(example, predictor.predict(example)),
            input_example=example,
            pip_requirements=pip_requirements(),
            model_config={"sha256": hashes},
        )
    tags = {
        "mlpipe.primary_metric": evaluation.primary_metric,
        "mlpipe.primary_value": f"{evaluation.primary_value:.6f}",
        "mlpipe.dataset.digest": data.digest,
        "mlpipe.dataset.source": data.source,
        "mlpipe.architecture": models.architecture,
        "mlpipe.decision": "pending",
        tracking.ELIGIBLE_TAG: "false",
        tracking.ELIGIBLE_REASON_TAG: "not judged yet",
        SPLIT_TAG: splits.spec.model_dump_json(),
        "mlpipe.sha256.preprocessor": hashes["preprocessor"],
    }
    if data.query is not None:
        tags["mlpipe.dataset.query"] = data.query
    version = tracking.register_version(uri, model_name, run.run_id, tags)
    example_path = write_parquet(example, run.path("input_example.parquet"))
    tracking.set_tags(
        run.run_id, {"mlpipe.model.name": model_name, "mlpipe.model.version": version}
    )
    log.info(
        "registered %s v%s (pending the smoke test and the promotion gate)", model_name, version
    )
    return Registration(
        model_name=model_name,
        version=version,
        model_uri=f"models:/{model_name}/{version}",
        input_example=example_path,
    )
