"""What a registered version carries besides its model, read through the tracking module.

Its schema, the suite that gated its training, its training profile and its split spec.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from mlpipe.config import DriftConfig
from mlpipe.data.split import SplitSpec
from mlpipe.errors import RegistryError
from mlpipe.handoff import ServingModel
from mlpipe.io import tracking
from mlpipe.learn.drift import DriftReport, Partitions, Profile, compare
from mlpipe.serving.schema import Schema, coerce_features

SCHEMA_ARTIFACT = "data/schema.json"
SUITE_ARTIFACT = "validation/suite.json"
PROFILE_ARTIFACT = "drift/reference_profile.json"
SPLIT_TAG = "mlpipe.split"


def resolve(name: str, version: str | None = None) -> ServingModel:
    """A version (default: the champion) with the schema and suite it was trained with.

    Raises:
        RegistryError: No such model or version, or a version not trained by mlpipe.
    """
    mv = tracking.version_info(name, version)
    schema = tracking.load_dict(str(mv.run_id), SCHEMA_ARTIFACT)
    if schema is None:
        raise RegistryError(
            f"{name} v{mv.version} was not trained by mlpipe (no {SCHEMA_ARTIFACT})"
        )
    return ServingModel(
        name=name,
        version=str(mv.version),
        run_id=str(mv.run_id),
        uri=f"models:/{name}/{mv.version}",
        dataset=Schema.model_validate(schema),
        suite=tracking.load_dict(str(mv.run_id), SUITE_ARTIFACT),
    )


def split_spec(tags: dict[str, str]) -> SplitSpec | None:
    """The split spec a version recorded, or ``None`` (versions from before hash splits)."""
    raw = tags.get(SPLIT_TAG)
    if not raw:
        return None
    try:
        return SplitSpec.model_validate(json.loads(raw))
    except (ValueError, TypeError):
        return None


def champion_profile(model_name: str) -> tuple[str, Profile] | None:
    """The champion's version and training profile, if there is a champion with a profile."""
    current = tracking.champion(model_name)
    if current is None:
        return None
    data = tracking.load_dict(current.run_id, PROFILE_ARTIFACT)
    return (current.version, Profile.model_validate(data)) if data else None


def measure_drift(
    frames: Partitions, schema: Schema, model_name: str, cfg: DriftConfig
) -> tuple[str, DriftReport] | None:
    """Drift of raw rows (a frame or its partitions) against the champion.

    Returns ``None`` when there is nothing to compare to.
    """
    found = champion_profile(model_name)
    if found is None:
        return None
    version, profile = found
    parts = [frames] if isinstance(frames, pd.DataFrame) else frames
    coerced = (coerce_features(frame, schema)[0] for frame in parts)
    return version, compare(profile, coerced, threshold=cfg.psi_threshold)


def incompatibility(champion: Schema, challenger: Schema, columns: list[str]) -> str | None:
    """Why a champion cannot be compared with a challenger on the challenger's rows, if so.

    Args:
        champion: The schema the champion was trained with.
        challenger: The challenger's schema.
        columns: The columns of the challenger's test rows.

    Returns:
        ``None`` when both predict the same target for the same task and the champion's
        features are all present; otherwise the reason, naming what differs.
    """
    if champion.target != challenger.target:
        return f"it predicts '{champion.target}', this version predicts '{challenger.target}'"
    if champion.task != challenger.task:
        return f"it is a {champion.task} model, this version is a {challenger.task} model"
    missing = [c for c in champion.features if c not in columns]
    if missing:
        shown = ", ".join(missing[:5]) + (
            f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        )
        return f"its feature columns {shown} are not in this version's data"
    return None


# Rows a champion scores at a time when promotion compares it with a new version.
CHAMPION_CHUNK_ROWS = 100_000


def champion_outputs(uri: str, rows: pd.DataFrame, classes: list[Any] | None) -> Any:
    """A registered model's outputs on raw rows: probabilities in ``classes`` order, or values.

    The model is loaded once and scores :data:`CHAMPION_CHUNK_ROWS` rows at a time, so memory
    holds the transformed rows of one chunk.

    Raises:
        RegistryError: The model predicts other classes than ``classes`` (its probability
            columns differ), so its outputs cannot be lined up with the challenger's.
    """
    import numpy as np

    model = tracking.load_pyfunc(uri)
    chunks = []
    step = CHAMPION_CHUNK_ROWS
    for at in range(0, len(rows), step):
        out = model.predict(rows.iloc[at : at + step])
        if classes is None:
            chunks.append(out["prediction"].to_numpy(dtype=np.float64))
            continue
        columns = [f"proba_{c}" for c in classes]
        theirs = [c for c in out.columns if str(c).startswith("proba_")]
        if set(theirs) != set(columns):
            mine = sorted(str(c) for c in classes)
            other = sorted(c.removeprefix("proba_") for c in theirs)
            raise RegistryError(
                f"it predicts the classes {_short(other)}, this version predicts {_short(mine)}"
            )
        proba = np.column_stack([out[c].to_numpy(dtype=np.float64) for c in columns])
        chunks.append(proba / np.clip(proba.sum(axis=1, keepdims=True), 1e-12, None))
    return np.concatenate(chunks)


def _short(labels: list[str], limit: int = 6) -> str:
    shown = ", ".join(labels[:limit])
    return f"[{shown}{', ...' if len(labels) > limit else ''}]"
