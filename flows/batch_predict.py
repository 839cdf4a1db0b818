"""The batch prediction flow: resolve the model, then validate and score the input in chunks."""

from __future__ import annotations

from pathlib import Path

from prefect import flow
from pydantic import BaseModel, ConfigDict, Field

from tasks.core import tracking
from tasks.predict import BatchResult, predict_file, resolve_model


class PredictRequest(BaseModel):
    """Parameters of a batch prediction (a typed form in the Prefect UI)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = Field(description="registered model name, e.g. mlpipe-penguins")
    input: str = Field(description="CSV or Parquet file of raw rows (no target needed)")
    output: str = Field(description="where to write predictions (.csv or .parquet)")
    version: str | None = Field(default=None, description="model version; default: champion")
    chunk_rows: int = Field(default=100_000, ge=1, description="rows read and scored at a time")
    max_quarantine_rate: float = Field(default=0.05, ge=0, le=1)
    experiment: str = "mlpipe-batch"


@flow(name="batch-predict", log_prints=True)
def batch_predict(request: PredictRequest) -> BatchResult:
    """Score ``request.input`` with the champion (or a version) and record the batch in MLflow."""
    uri = tracking.configure()
    model = resolve_model(request.model, request.version)
    source = Path(request.input)
    digest = tracking.file_digest(source)
    tags = {"mlpipe.model.name": model.name, "mlpipe.model.version": model.version,
            "mlpipe.model.run_id": model.run_id, "mlpipe.input.sha256": digest}  # fmt: skip
    name = f"predict-{model.name}-v{model.version}"
    run_id = tracking.start_run(request.experiment, name, uri, tags)
    try:
        tracking.log_params(run_id, {k: str(v) for k, v in request.model_dump().items()})
        tracking.log_input_file(run_id, source, model.dataset.name, digest)
        result = predict_file(model, request.input, request.output, request.chunk_rows,
                              request.max_quarantine_rate, run_id)  # fmt: skip
    except BaseException as err:
        tracking.set_tags(run_id, {"mlpipe.error": f"{type(err).__name__}: {err}"[:5000]})
        tracking.end_run(run_id, failed=True)
        raise
    tracking.end_run(run_id, failed=False)
    return result
