"""Raw rows in, predictions out: the code that serves a registered model.

:class:`Predictor` is used by evaluation (so the metrics describe exactly what is served) and by
:class:`MlpipePyfunc`, the MLflow pyfunc wrapper.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import torch
from mlflow.pyfunc import PythonModel

from .nets import build_network
from .schema import Schema, coerce_features

PREPROCESSOR_FILE = "preprocessor.joblib"
NETWORK_FILE = "network.pt"
META_FILE = "meta.json"
PARTS = {"preprocessor": PREPROCESSOR_FILE, "network": NETWORK_FILE, "meta": META_FILE}
# Output columns a predictor adds; inputs with these names would be overwritten.
RESERVED_PREFIX = "proba_"
PREDICTION = "prediction"


class IntegrityError(RuntimeError):
    """A model file does not match the SHA-256 recorded when the model was registered."""


def sha256_file(path: str | Path) -> str:
    """SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(files: dict[str, str], expected: dict[str, str]) -> None:
    """Check each file against its recorded SHA-256 before anything is unpickled.

    Raises:
        IntegrityError: A file is missing from ``expected`` or its content changed.
    """
    for role, path in files.items():
        want = expected.get(role)
        if want is None:
            raise IntegrityError(f"no SHA-256 recorded for the model's {role} file")
        got = sha256_file(path)
        if got != want:
            raise IntegrityError(
                f"the model's {role} file {Path(path).name} was modified since registration "
                f"(sha256 {got[:12]}..., expected {want[:12]}...): refusing to load it"
            )


def transform(preprocessor: Any, schema: Schema, rows: pd.DataFrame) -> np.ndarray:
    """Raw rows to the float32 feature matrix: coerce types, then the fitted preprocessing."""
    coerced, _ = coerce_features(rows, schema)
    return np.asarray(preprocessor.transform(coerced[schema.features]), dtype=np.float32)


class Predictor:
    """Fitted preprocessing + trained network + metadata.

    Args:
        preprocessor: Fitted scikit-learn ColumnTransformer.
        network: Trained torch module.
        meta: ``schema`` (Schema as JSON), ``classes`` (labels, classification only),
            ``target_mean``/``target_std`` (regression only) and ``network`` (its spec).
    """

    def __init__(self, preprocessor: Any, network: torch.nn.Module, meta: dict[str, Any]):
        self.preprocessor = preprocessor
        self.network = network.eval()
        self.meta = meta
        self.schema = Schema.model_validate(meta["schema"])

    @classmethod
    def load(cls, folder: str | Path, sha256: dict[str, str] | None = None) -> Predictor:
        """Load a predictor saved with :meth:`save`, verifying file hashes when given."""
        folder = Path(folder)
        files = {role: str(folder / name) for role, name in PARTS.items()}
        if sha256 is not None:
            verify(files, sha256)
        meta = json.loads(Path(files["meta"]).read_text())
        network = build_network(meta["network"])
        state = torch.load(files["network"], map_location="cpu", weights_only=True)
        network.load_state_dict(state)
        return cls(joblib.load(files["preprocessor"]), network, meta)

    def save(self, folder: str | Path) -> dict[str, str]:
        """Write the three parts into ``folder``; return their paths by role."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        paths = {role: folder / name for role, name in PARTS.items()}
        joblib.dump(self.preprocessor, paths["preprocessor"])
        torch.save(self.network.state_dict(), paths["network"])
        paths["meta"].write_text(json.dumps(self.meta, indent=2))
        return {k: str(v) for k, v in paths.items()}

    def features(self, rows: pd.DataFrame) -> np.ndarray:
        """Coerce raw rows and apply the fitted preprocessing; float32 feature matrix."""
        return transform(self.preprocessor, self.schema, rows)

    def raw_outputs(self, x: np.ndarray) -> np.ndarray:
        """Network outputs for a feature matrix.

        Returns:
            Class probabilities (rows sum to 1), or predictions in target units for regression.
        """
        with torch.no_grad():
            out = self.network(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)))
        if self.schema.task == "regression":
            scaled = out[:, 0].numpy().astype(np.float64)
            return scaled * float(self.meta["target_std"]) + float(self.meta["target_mean"])
        proba = torch.softmax(out.double(), dim=1).numpy()
        return proba / proba.sum(axis=1, keepdims=True)

    def output_columns(self) -> list[str]:
        """Names of the columns :meth:`predict` returns."""
        if self.schema.task == "regression":
            return [PREDICTION]
        return [PREDICTION, *(f"{RESERVED_PREFIX}{c}" for c in self.meta["classes"])]

    def predict(self, rows: pd.DataFrame) -> pd.DataFrame:
        """Predict raw rows (NaNs and extra columns allowed).

        Args:
            rows: Raw feature columns as in the training data; the target may be absent.

        Returns:
            A frame with ``prediction`` and, for classification, ``proba_<class>`` columns,
            indexed like ``rows``.
        """
        if len(rows):
            outputs = self.raw_outputs(self.features(rows))
        else:  # no rows: no answers (the imputer refuses to transform nothing)
            width = 1 if self.schema.task == "regression" else len(self.meta["classes"])
            outputs = np.empty((0, width)) if width > 1 else np.empty(0)
        if self.schema.task == "regression":
            return pd.DataFrame({PREDICTION: outputs}, index=rows.index)
        classes = self.meta["classes"]
        labels = np.asarray(classes, dtype=object)[outputs.argmax(axis=1)]
        columns: dict[str, Any] = {PREDICTION: labels}
        for i, cls in enumerate(classes):
            columns[f"{RESERVED_PREFIX}{cls}"] = outputs[:, i]
        return pd.DataFrame(columns, index=rows.index)


class MlpipePyfunc(PythonModel):
    """MLflow pyfunc wrapper around :class:`Predictor` (artifacts: preprocessor, network, meta).

    ``model_config["sha256"]`` holds the SHA-256 of each artifact, recorded at registration; the
    files are verified before the preprocessor is unpickled.
    """

    def load_context(self, context: Any) -> None:
        """Verify the artifacts' hashes, then load the predictor."""
        config = context.model_config or {}
        files = {role: context.artifacts[role] for role in PARTS}
        verify(files, config.get("sha256") or {})
        self._predictor = Predictor.load(Path(files["meta"]).parent)

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        """Predict raw rows; see :meth:`Predictor.predict`."""
        if not isinstance(model_input, pd.DataFrame):
            model_input = pd.DataFrame(model_input)
        return self._predictor.predict(model_input)
