"""Stage: load the source into the run directory and resolve the column roles."""

from __future__ import annotations

import pandas as pd
from prefect import task
from pydantic import BaseModel, ConfigDict

from tasks.core import tracking
from tasks.core.config import DatasetSpec
from tasks.core.datasets import BUILTINS, dataset_name, is_builtin, load_source
from tasks.core.errors import ConfigError, DataError
from tasks.core.run import RunContext, logger, write_parquet
from tasks.core.schema import Schema, find_leaks, infer_roles, infer_task

MIN_ROWS = 10


class LoadedData(BaseModel):
    """The raw table in the run directory plus its resolved schema."""

    model_config = ConfigDict(frozen=True)

    path: str
    dataset: Schema
    source: str
    digest: str
    rows: int


def resolve_schema(frame: pd.DataFrame, spec: DatasetSpec) -> Schema:
    """Resolve target, task and column roles from the spec, built-in defaults and the data.

    Args:
        frame: The raw table.
        spec: The dataset spec from the config.

    Returns:
        The resolved schema.

    Raises:
        DataError: Target missing, unusable target, named columns absent, or too few rows.
        ConfigError: Inconsistent image spec.
    """
    builtin = BUILTINS.get(spec.source) if is_builtin(spec.source) else None
    target = spec.target or (builtin.target if builtin else None)
    if not target:
        raise ConfigError("no target column: pass --target COL or set dataset.target")
    if target not in frame.columns:
        raise DataError(
            f"target column '{target}' not found; columns are: {', '.join(map(str, frame.columns))}"
        )
    if len(frame) < MIN_ROWS:
        raise DataError(
            f"only {len(frame)} row{'s' if len(frame) != 1 else ''}; "
            f"at least {MIN_ROWS} are needed to train"
        )
    labels = frame[target].dropna()
    if labels.empty:
        raise DataError(f"target column '{target}' has no values (all missing)")
    task_type = spec.task or (builtin.task if builtin else None) or infer_task(frame[target])
    if task_type != "regression" and labels.nunique() < 2:
        raise DataError(
            f"target column '{target}' has a single class ({labels.iloc[0]!r}): nothing to learn"
        )
    ignore = list(dict.fromkeys([*spec.ignore, *(builtin.ignore if builtin else ())]))
    named = [*(spec.numeric or []), *(spec.categorical or []), *ignore]
    absent = [c for c in named if c not in frame.columns]
    if absent:
        raise DataError(f"configured columns not in the data: {', '.join(absent)}")
    inferred_num, inferred_cat, ignored = infer_roles(frame, target, ignore)
    # Explicit roles win over inference; the remaining columns keep their inferred role.
    explicit_num, explicit_cat = list(spec.numeric or []), list(spec.categorical or [])
    explicit = set(explicit_num) | set(explicit_cat)
    numeric = explicit_num + [c for c in inferred_num if c not in explicit]
    categorical = explicit_cat + [c for c in inferred_cat if c not in explicit]
    ignored = [c for c in ignored if c not in explicit]
    if target in numeric + categorical:
        raise DataError(f"target column '{target}' is also listed as a feature")
    leaks = find_leaks(frame, target, [c for c in numeric + categorical if c not in explicit])
    if leaks:
        logger("load").warning(
            "leakage: %s restate(s) the target '%s'; ignored as features", ", ".join(leaks), target
        )
        numeric = [c for c in numeric if c not in leaks]
        categorical = [c for c in categorical if c not in leaks]
        ignored = [*ignored, *leaks]
    if not numeric and not categorical:
        raise DataError("no feature columns left after removing the target and ignored columns")

    image = spec.image or (builtin.image if builtin else None)
    pixels: list[str] = []
    shape = None
    if image is not None:
        pixels = list(image.pixel_columns) or [
            str(c) for c in frame.columns if str(c).startswith(image.pixel_prefix)
        ]
        h, w = image.shape
        if len(pixels) != h * w:
            raise ConfigError(
                f"dataset.image.shape {h}x{w} needs {h * w} pixel columns, found {len(pixels)}"
            )
        missing = [p for p in pixels if p not in frame.columns]
        if missing:
            raise DataError(f"pixel columns not in the data: {', '.join(missing[:5])}")
        numeric = pixels + [c for c in numeric if c not in pixels]
        categorical = [c for c in categorical if c not in pixels]
        shape = (h, w)
    return Schema(
        name=dataset_name(spec),
        target=target,
        task=task_type,
        numeric=numeric,
        categorical=categorical,
        ignore=[c for c in ignored if c != target],
        image_shape=shape,
        pixel_columns=pixels,
        leakage=leaks,
    )


def read_dataset(spec: DatasetSpec) -> tuple[pd.DataFrame, Schema]:
    """Load a dataset and resolve its schema; the CLI's fast pre-flight check uses this too."""
    frame = load_source(spec)
    return frame, resolve_schema(frame, spec)


@task(name="load")
def load_data(spec: DatasetSpec, run: RunContext) -> LoadedData:
    """Load the source, write ``raw.parquet``, log the dataset and its full digest to MLflow."""
    log = logger("load")
    frame, schema = read_dataset(spec)
    # Parquet needs string column names; keep the table as read otherwise.
    frame.columns = [str(c) for c in frame.columns]
    path = write_parquet(frame, run.path("raw.parquet"))
    digest = tracking.frame_digest(frame)
    source = spec.source if is_builtin(spec.source) else str(spec.source)
    tracking.log_dataset(
        run.run_id,
        frame,
        source=source,
        name=schema.name,
        target=schema.target,
        context="training",
        digest=digest,
    )
    tracking.log_dict(run.run_id, schema.model_dump(mode="json"), "data/schema.json")
    tags = {"mlpipe.dataset": schema.name, "mlpipe.task": schema.task}
    if schema.leakage:
        tags["mlpipe.leakage"] = ", ".join(schema.leakage)
    tracking.set_tags(run.run_id, tags)
    log.info(
        "loaded %s: %d rows, %d numeric + %d categorical features, target '%s' (%s)",
        schema.name,
        len(frame),
        len(schema.numeric),
        len(schema.categorical),
        schema.target,
        schema.task,
    )
    return LoadedData(path=path, dataset=schema, source=source, digest=digest, rows=len(frame))
