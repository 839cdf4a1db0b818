"""What stages hand to each other: small, frozen, JSON-serialisable references.

Data travels between tasks as Parquet files in the run directory; these types carry the paths
plus the little metadata the next stage needs. They live in one module so that no stage imports
another.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from mlpipe.config import DatasetSpec, ExecutionConfig
from mlpipe.data.clean import CleanStats
from mlpipe.data.split import SplitSpec
from mlpipe.quality.gate import GateOutcome
from mlpipe.serving.schema import Schema


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class RunContext(_Frozen):
    """Identifies one training run: its MLflow run and its scratch directory."""

    run_id: str
    run_dir: str
    execution: ExecutionConfig = ExecutionConfig()

    def path(self, name: str) -> Path:
        """Path of a file inside the run directory."""
        return Path(self.run_dir) / name


class LoadedData(_Frozen):
    """The raw table in the run directory plus its resolved schema and lineage.

    ``source``: where it came from, redacted (a path, a built-in name, a URL); ``query``: the
    SQL that produced it, for a database source.
    """

    path: str
    dataset: Schema
    source: str
    digest: str
    rows: int
    query: str | None = None

    @classmethod
    def of(cls, spec: DatasetSpec, path: str, schema: Schema, digest: str, rows: int) -> LoadedData:
        """The staged data of ``spec``'s source (the one place lineage is put together)."""
        from mlpipe.secrets import redact

        query = spec.query or (f"SELECT * FROM {spec.table}" if spec.table else None)
        return cls(
            path=path, dataset=schema, source=redact(str(spec.source)), digest=digest,
            rows=rows, query=query,
        )  # fmt: skip


class ValidatedData(_Frozen):
    """Rows that passed the gate, the gate's accounting, and the suite that judged them."""

    path: str
    dataset: Schema
    gate: GateOutcome
    suite_path: str
    quarantine_path: str | None = None


class CleanedData(_Frozen):
    """The cleaned table in the run directory and its accounting."""

    path: str
    dataset: Schema
    stats: CleanStats


class Splits(_Frozen):
    """Paths of the three splits, the class labels (classification) and the split spec."""

    train: str
    val: str
    test: str
    dataset: Schema
    spec: SplitSpec
    classes: list[int | float | str] | None = None


class Features(_Frozen):
    """The fitted preprocessor (joblib), its output columns, the transformed train/val rows."""

    preprocessor: str
    names: list[str]
    train: str
    val: str


class TrainedModels(_Frozen):
    """The served predictor (folder) and the comparison candidates (joblib files)."""

    predictor: str
    history: list[dict[str, float]]
    best_epoch: int
    architecture: str
    seconds: float
    candidates: str
    baseline_kind: str


class Evaluation(_Frozen):
    """Test metrics of the network (``test_*``) and baseline (``baseline_test_*``)."""

    metrics: dict[str, float]
    primary_metric: str
    primary_value: float
    higher_is_better: bool
    evidence: str
    evidence_rows: str  # the raw test rows the evidence is about (Parquet)
    test_rows: int
    baseline_kind: str | None = None


class Registration(_Frozen):
    """The registered version, not yet judged by the promotion gate."""

    model_name: str
    version: str
    model_uri: str
    input_example: str


class TrainingResult(_Frozen):
    """What one training run produced."""

    run_id: str
    run_dir: str
    model_name: str
    version: str
    promoted: bool
    eligible: bool
    reason: str
    metrics: dict[str, float]

    def summary(self) -> str:
        """One line: the version, the decision and its reason, the test metrics."""
        decision = "promoted to champion" if self.promoted else "not promoted"
        tests = ", ".join(
            f"{k}={v:.4g}" for k, v in sorted(self.metrics.items()) if k.startswith("test_")
        )
        reason = self.reason.removeprefix(f"{decision}: ")  # said once
        return f"{self.model_name} v{self.version} {decision}: {reason} ({tests})"


@dataclass
class Evidence:
    """Test-split evidence computed once by evaluation, read by promotion and the model card.

    It covers the test rows, or a uniform sample of ``EVIDENCE_ROWS`` of them on larger test
    splits (``Evaluation.evidence_rows`` holds those rows).

    Attributes:
        y: Encoded targets of the evidence rows.
        outputs: Outputs per candidate (``network``, ``baseline``, ``trivial``).
        masks: Slice masks over the evidence rows (``class=<label>``, ``<column>=<value>``).
    """

    y: np.ndarray
    outputs: dict[str, np.ndarray]
    masks: dict[str, np.ndarray]

    def save(self, path: str | Path) -> str:
        """Write as one ``.npz`` file."""
        arrays: dict[str, Any] = {"y": self.y}
        arrays.update({f"out:{k}": v for k, v in self.outputs.items()})
        arrays.update({f"mask:{k}": v for k, v in self.masks.items()})
        with Path(path).open("wb") as fh:
            np.savez(fh, **arrays)
        return str(path)

    @classmethod
    def load(cls, path: str | Path) -> Evidence:
        """Read what :meth:`save` wrote."""
        with np.load(path, allow_pickle=False) as data:
            return cls(
                y=data["y"],
                outputs={k[4:]: data[k] for k in data.files if k.startswith("out:")},
                masks={k[5:]: data[k] for k in data.files if k.startswith("mask:")},
            )


class PredictRequest(_Frozen):
    """Parameters of a batch prediction (a typed form in the Prefect UI)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = Field(description="registered model name, e.g. mlpipe-penguins")
    input: str = Field(description="CSV or Parquet file of raw rows (no target needed)")
    output: str = Field(description="where to write predictions (.csv or .parquet)")
    version: str | None = Field(default=None, description="model version; default: champion")
    chunk_rows: int = Field(default=100_000, ge=1, description="rows read and scored at a time")
    max_quarantine_rate: float = Field(default=0.05, ge=0, le=1)
    batch_alpha: float = Field(default=0.01, gt=0, lt=0.5)
    encoding: str = "auto"
    experiment: str = "mlpipe-batch"
    execution: ExecutionConfig = Field(
        default=ExecutionConfig(engine="local"),
        description="where the chunks are scored: here, or on a Dask cluster",
    )


class ServingModel(_Frozen):
    """A resolved registered model version and what it was trained with."""

    name: str
    version: str
    run_id: str
    uri: str
    dataset: Schema
    suite: dict[str, Any] | None = None


class BatchResult(_Frozen):
    """What a batch produced."""

    output: str
    rows_in: int
    rows_predicted: int
    rows_quarantined: int
    model_version: str
    quarantine: str | None = None


class Assessment(_Frozen):
    """What the monitoring run found in a batch."""

    model_name: str
    rows: int
    digest: str
    gate_passed: bool
    gate_message: str | None = None
    drifted: list[str]
    reference_version: str | None = None
    accepted: str | None = None  # why the batch was or was not kept for training


class TriggerDecision(_Frozen):
    """Whether a retraining was started, and why (logged either way)."""

    # triggered | duplicate | cooldown | no drift | gate failed | no server | no deployment
    action: str
    reason: str
    flow_run_id: str | None = None
