"""Raw rows in, predictions out: the code that serves a registered model.

:class:`Predictor` is used both by evaluation (so the metrics describe exactly what is served)
and by :class:`MlpipePyfunc`, the MLflow pyfunc wrapper. Shipped inside every registered model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import torch
from mlflow.pyfunc import PythonModel

from tasks.core.nets import build_network
from tasks.core.schema import Schema, coerce_features

PREPROCESSOR_FILE = "preprocessor.joblib"
NETWORK_FILE = "network.pt"
META_FILE = "meta.json"


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
    def load(cls, folder: str | Path) -> Predictor:
        """Load a predictor saved with :meth:`save`."""
        folder = Path(folder)
        meta = json.loads((folder / META_FILE).read_text())
        network = build_network(meta["network"])
        state = torch.load(folder / NETWORK_FILE, map_location="cpu", weights_only=True)
        network.load_state_dict(state)
        return cls(joblib.load(folder / PREPROCESSOR_FILE), network, meta)

    def save(self, folder: str | Path) -> dict[str, str]:
        """Write the three parts into ``folder``; return their paths by role."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        paths = {
            "preprocessor": folder / PREPROCESSOR_FILE,
            "network": folder / NETWORK_FILE,
            "meta": folder / META_FILE,
        }
        joblib.dump(self.preprocessor, paths["preprocessor"])
        torch.save(self.network.state_dict(), paths["network"])
        paths["meta"].write_text(json.dumps(self.meta, indent=2))
        return {k: str(v) for k, v in paths.items()}

    def features(self, rows: pd.DataFrame) -> np.ndarray:
        """Coerce raw rows and apply the fitted preprocessing; float32 feature matrix."""
        coerced, _ = coerce_features(rows, self.schema)
        transformed = self.preprocessor.transform(coerced[self.schema.features])
        return np.asarray(transformed, dtype=np.float32)

    def raw_outputs(self, x: np.ndarray) -> np.ndarray:
        """Network outputs for a feature matrix.

        Returns:
            Class probabilities (rows sum to 1), or predictions in target units for regression.
        """
        with torch.no_grad():
            out = self.network(torch.tensor(x))
        if self.schema.task == "regression":
            scaled = out[:, 0].numpy().astype(np.float64)
            return scaled * float(self.meta["target_std"]) + float(self.meta["target_mean"])
        proba = torch.softmax(out.double(), dim=1).numpy()
        return proba / proba.sum(axis=1, keepdims=True)

    def predict(self, rows: pd.DataFrame) -> pd.DataFrame:
        """Predict raw rows (NaNs and extra columns allowed).

        Args:
            rows: Raw feature columns as in the training data; the target may be absent.

        Returns:
            A frame with ``prediction`` and, for classification, ``proba_<class>`` columns,
            indexed like ``rows``.
        """
        outputs = self.raw_outputs(self.features(rows))
        if self.schema.task == "regression":
            return pd.DataFrame({"prediction": outputs}, index=rows.index)
        classes = self.meta["classes"]
        labels = np.asarray(classes, dtype=object)[outputs.argmax(axis=1)]
        frame = pd.DataFrame({"prediction": labels}, index=rows.index)
        for i, cls in enumerate(classes):
            frame[f"proba_{cls}"] = outputs[:, i]
        return frame


class MlpipePyfunc(PythonModel):
    """MLflow pyfunc wrapper around :class:`Predictor` (artifacts: preprocessor, network, meta)."""

    def load_context(self, context: Any) -> None:
        """Load the predictor from the model's artifacts."""
        folder = Path(context.artifacts["meta"]).parent
        self._predictor = Predictor.load(folder)

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        """Predict raw rows; see :meth:`Predictor.predict`."""
        if not isinstance(model_input, pd.DataFrame):
            model_input = pd.DataFrame(model_input)
        return self._predictor.predict(model_input)
