"""The one typed configuration of mlpipe.

Loaded from YAML, overridden with ``key=value`` strings, validated by pydantic. Models are frozen
and forbid unknown keys, so a typo in a key is an error that names the key, not a silent default.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tasks.core.errors import ConfigError
from tasks.core.servers import redact

TaskType = Literal["binary", "multiclass", "regression"]
MissingPolicy = Literal["drop", "ffill", "impute"]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ImageSpec(_Model):
    """Where the pixels of an image dataset live in the table.

    Attributes:
        pixel_columns: Explicit pixel column names, row-major. Empty means "every column whose
            name starts with ``pixel_prefix``", in table order.
        pixel_prefix: Prefix used when ``pixel_columns`` is empty.
        shape: Image height and width; ``height * width`` must equal the number of pixels.
    """

    pixel_columns: list[str] = Field(default_factory=list)
    pixel_prefix: str = "pixel_"
    shape: tuple[int, int]


class DatasetSpec(_Model):
    """What to train on.

    Attributes:
        source: A built-in dataset name (see ``mlpipe datasets``) or a CSV or Parquet path.
        name: Short name used for the expectation suite and the registered model. Defaults to the
            built-in name or the file stem.
        target: Target column. Built-in datasets provide one.
        task: ``binary``, ``multiclass`` or ``regression``; inferred from the target when omitted.
        numeric: Columns to treat as numeric (inferred when omitted).
        categorical: Columns to treat as categorical (inferred when omitted).
        ignore: Columns never used as features (ids, free text, leakage).
        image: Pixel layout for image datasets.
        expectations: Path of the Great Expectations suite; defaults to
            ``expectations/<name>.json``.
    """

    source: str = "digits"
    name: str | None = None
    target: str | None = None
    task: TaskType | None = None
    numeric: list[str] | None = None
    categorical: list[str] | None = None
    ignore: list[str] = Field(default_factory=list)
    image: ImageSpec | None = None
    expectations: str | None = None


class CleanConfig(_Model):
    """Cleaning rules.

    Attributes:
        drop_duplicates: Drop exact duplicate rows.
        missing: Per-column policy for missing values: ``drop`` the row, ``ffill`` (forward-fill
            in row order), or ``impute`` (left to the feature pipeline's imputer, which is fitted
            on the training split only, so no test statistics leak into training).
        missing_default: Policy for feature columns not named in ``missing``.
    """

    drop_duplicates: bool = True
    missing: dict[str, MissingPolicy] = Field(default_factory=dict)
    missing_default: MissingPolicy = "impute"


class DriftConfig(_Model):
    """Drift of incoming data against the champion's training data.

    Attributes:
        gate: ``off`` (not measured), ``warn`` (measured and logged) or ``fail`` (stop the run
            before training when a column drifts).
        psi_threshold: Population stability index above which a column counts as drifted
            (0.1 is the customary "moderate shift", 0.25 "major shift").
        bins: Quantile bins of the numeric reference profile.
    """

    gate: Literal["off", "warn", "fail"] = "warn"
    psi_threshold: float = Field(default=0.2, gt=0)
    bins: int = Field(default=10, ge=2, le=100)


class ValidationConfig(_Model):
    """The data-quality gate.

    Attributes:
        engine: ``fast`` evaluates common expectation types with vectorised pandas and hands
            the rest to Great Expectations; ``gx`` uses Great Expectations for everything.
        max_quarantine_rate: Fail the run when more than this share of rows is quarantined.
        drift: Drift check against the champion.
    """

    engine: Literal["fast", "gx"] = "fast"
    max_quarantine_rate: float = Field(default=0.05, ge=0, le=1)
    drift: DriftConfig = DriftConfig()


class SplitConfig(_Model):
    """Train/validation/test split (fractions of the cleaned rows)."""

    test_size: float = Field(default=0.2, gt=0, lt=1)
    val_size: float = Field(default=0.1, gt=0, lt=1)
    stratify: bool = True

    @model_validator(mode="after")
    def _sizes_leave_training_rows(self) -> SplitConfig:
        if self.test_size + self.val_size >= 0.9:
            raise ValueError("split.test_size + split.val_size must be below 0.9")
        return self


class FeatureConfig(_Model):
    """Feature pipeline (a scikit-learn ColumnTransformer fitted on the training split)."""

    numeric_impute: Literal["median", "mean"] = "median"
    # auto: min-max for image datasets (pixels share one scale; standardising near-constant
    # border pixels amplifies noise), standard scaling otherwise.
    scaler: Literal["auto", "standard", "minmax", "none"] = "auto"
    categorical_encoding: Literal["onehot", "ordinal"] = "onehot"
    max_categories: int | None = Field(default=20, ge=2)


class TrainConfig(_Model):
    """Network and baseline training.

    Attributes:
        architecture: ``mlp`` (dense network) or ``cnn`` (small convnet; image datasets only).
        hidden_layers: Hidden layer widths of the MLP.
        dropout: Dropout after each hidden layer of the MLP.
        learning_rate: Adam learning rate.
        weight_decay: Adam weight decay (L2).
        batch_size: Mini-batch size.
        max_epochs: Upper bound on epochs.
        patience: Early stopping: epochs without validation improvement before stopping.
        baseline: scikit-learn model trained in the same run for comparison
            (``linear``: logistic/ridge regression, ``hgb``: histogram gradient boosting).
        device: ``auto`` picks CUDA when available, else CPU.
    """

    architecture: Literal["mlp", "cnn"] = "mlp"
    hidden_layers: list[int] = Field(default_factory=lambda: [256, 128])
    dropout: float = Field(default=0.2, ge=0, lt=1)
    learning_rate: float = Field(default=1e-3, gt=0)
    weight_decay: float = Field(default=0.0, ge=0)
    batch_size: int = Field(default=64, ge=1)
    max_epochs: int = Field(default=100, ge=1)
    patience: int = Field(default=10, ge=1)
    baseline: Literal["linear", "hgb", "none"] = "linear"
    device: Literal["auto", "cpu", "cuda"] = "auto"


class PromotionConfig(_Model):
    """The gate in front of the `champion` alias.

    Attributes:
        metric: Primary metric; defaults by task (accuracy for multiclass, roc_auc for binary,
            rmse for regression).
        margin: Minimum improvement on the primary metric over the champion.
        test: Paired test on the shared test rows: ``bootstrap`` (CI of the metric difference
            must exclude zero) or ``mcnemar`` (accuracy only).
        resamples: Bootstrap resamples.
        confidence: Confidence level of the bootstrap interval.
        slices: Slices that must not get worse: ``class`` (per target class) and/or column
            names (per category of that column).
        slice_tolerance: Largest tolerated drop of the metric within a slice.
        min_metrics: Absolute thresholds a first model must pass, e.g. ``{accuracy: 0.9}``
            (upper bounds for rmse, mae and log_loss).
    """

    metric: str | None = None
    margin: float = Field(default=0.0, ge=0)
    test: Literal["bootstrap", "mcnemar"] = "bootstrap"
    resamples: int = Field(default=1000, ge=100)
    confidence: float = Field(default=0.95, gt=0.5, lt=1)
    slices: list[str] = Field(default_factory=lambda: ["class"])
    slice_tolerance: float = Field(default=0.05, ge=0)
    min_metrics: dict[str, float] = Field(default_factory=dict)


class TrackingConfig(_Model):
    """MLflow tracking and registry.

    Attributes:
        uri: Tracking URI. Empty means ``MLFLOW_TRACKING_URI`` if set, else a local SQLite file
            ``mlflow.db`` with artifacts in ``mlruns/`` in the working directory.
        experiment: Experiment name.
        model_name: Registered model name; defaults to ``mlpipe-<dataset name>``.
    """

    uri: str | None = None
    experiment: str = "mlpipe"
    model_name: str | None = None


class ScheduleConfig(_Model):
    """When `mlpipe deploy` runs things on its own.

    Attributes:
        cron: Cron expression of the scheduled training run (``null`` for none).
        timezone: Time zone of the cron expression.
        monitor_cron: Cron of the monitoring (drift) run; ``null`` for none.
        monitor_data: File the monitoring run validates (new batches land there).
        cooldown_minutes: After a drift-triggered retraining, no other one for this long.
    """

    cron: str | None = "0 2 * * *"
    timezone: str = "UTC"
    monitor_cron: str | None = None
    monitor_data: str | None = None
    cooldown_minutes: float = Field(default=360, ge=0)


class Config(_Model):
    """The whole mlpipe configuration."""

    seed: int = 42
    runs_dir: str = "runs"
    dataset: DatasetSpec = DatasetSpec()
    validation: ValidationConfig = ValidationConfig()
    clean: CleanConfig = CleanConfig()
    split: SplitConfig = SplitConfig()
    features: FeatureConfig = FeatureConfig()
    train: TrainConfig = TrainConfig()
    promotion: PromotionConfig = PromotionConfig()
    tracking: TrackingConfig = TrackingConfig()
    schedule: ScheduleConfig = ScheduleConfig()


def _format_validation_error(err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "<root>"
        if e["type"] == "extra_forbidden":
            parts.append(f"unknown config key '{loc}'")
        else:
            parts.append(f"config key '{loc}': {e['msg']}")
    return "; ".join(parts)


def _parse_value(raw: str) -> Any:
    """Parse an override value with YAML rules (``3`` -> int, ``[1, 2]`` -> list, ``x`` -> str)."""
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``dotted.key=value`` overrides to a nested dict.

    Args:
        data: Nested configuration mapping (not modified).
        overrides: Strings of the form ``a.b.c=value``; values are parsed as YAML.

    Returns:
        A new nested mapping with the overrides applied.

    Raises:
        ConfigError: An override is not of the form ``key=value``.
    """
    result: dict[str, Any] = json.loads(json.dumps(data))
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override '{item}' is not of the form key=value")
        node = result
        parts = key.strip().split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        node[parts[-1]] = _parse_value(raw)
    return result


def build_config(data: dict[str, Any] | None = None, overrides: list[str] | None = None) -> Config:
    """Validate a mapping (plus overrides) into a :class:`Config`.

    Args:
        data: Nested configuration mapping, e.g. parsed YAML.
        overrides: ``key=value`` strings applied on top.

    Returns:
        The validated, frozen configuration.

    Raises:
        ConfigError: Unknown key, wrong type or invalid value; the message names the key.
    """
    merged = apply_overrides(data or {}, overrides or [])
    try:
        return Config.model_validate(merged)
    except ValidationError as err:
        raise ConfigError(_format_validation_error(err)) from None


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Load a YAML config file and apply overrides.

    Args:
        path: YAML file; ``None`` means all defaults.
        overrides: ``key=value`` strings applied on top.

    Returns:
        The validated, frozen configuration.

    Raises:
        ConfigError: The file is missing or unreadable, or the content is invalid.
    """
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        try:
            loaded = yaml.safe_load(p.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as err:
            raise ConfigError(f"config file {p} is not valid YAML: {err}") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {p} must hold a mapping at the top level")
        data = loaded
    return build_config(data, overrides)


def flatten(config: BaseModel, prefix: str = "") -> dict[str, str]:
    """Flatten a config into ``dotted.key -> string`` pairs (for MLflow params).

    Args:
        config: Any pydantic model.
        prefix: Key prefix used in recursion.

    Returns:
        A flat mapping with JSON-encoded lists and ``None`` as ``"null"``.
    """
    out: dict[str, str] = {}

    def walk(value: Any, key: str) -> None:
        if isinstance(value, dict):
            if not value and key:
                out[key] = "{}"
            for k, v in value.items():
                walk(v, f"{key}.{k}" if key else str(k))
        elif isinstance(value, list | tuple):
            out[key] = json.dumps(list(value))
        elif value is None:
            out[key] = "null"
        elif isinstance(value, str) and "://" in value:
            out[key] = redact(value)  # no passwords in params
        else:
            out[key] = str(value)

    walk(config.model_dump(mode="json"), prefix)
    return out
