"""The batch prediction flow: resolve the model, then validate and score the input in chunks."""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from mlpipe.handoff import BatchResult, PredictRequest
from mlpipe.io import tracking
from mlpipe.orchestration import prepare_run_process
from mlpipe.serving.predictor import sha256_file
from tasks.predict import predict_file, published, resolve_model, staged


@flow(name="batch-predict", log_prints=True, on_running=[prepare_run_process])
def batch_predict(request: PredictRequest) -> BatchResult:
    """Score ``request.input`` with the champion (or a version) and record the batch in MLflow."""
    tracking.configure()
    model = resolve_model(request.model, request.version)
    # `here`: the same request with local paths (a remote input copied, a remote output
    # uploaded when the batch succeeded); MLflow records the request as given.
    with staged(request) as here:
        digest = sha256_file(here.input)
        tags = {
            "mlpipe.model.name": model.name,
            "mlpipe.model.version": model.version,
            "mlpipe.model.run_id": model.run_id,
            "mlpipe.input.sha256": digest,
        }
        with tracking.tracked_run(
            request.experiment, f"predict-{model.name}-v{model.version}", tags
        ) as run_id:
            tracking.log_params(run_id, {k: str(v) for k, v in request.model_dump().items()})
            tracking.log_input_file(
                run_id, Path(here.input), model.dataset.name, digest, request.encoding,
                request.input,
            )  # fmt: skip
            result = predict_file(model, here, run_id)
    return published(result, request)
