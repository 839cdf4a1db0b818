"""The one typed configuration of mlpipe.

Loaded from YAML, overridden with ``key=value`` strings, validated by pydantic. Models are frozen
and forbid unknown keys, so a typo in a key is an error that names the key, not a silent default.
Configs are logged, stored with every run and sent to Prefect as flow parameters, so they must
never hold a credential: a value with a password is refused (credentials come from the
environment).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mlpipe.errors import ConfigError
from mlpipe.secrets import has_secret, redact_obj

TaskType = Literal["binary", "multiclass", "regression"]
MissingPolicy = Literal["drop", "ffill", "impute"]

# Dataset names become file names (expectations/NAME.json) and model names: word characters,
# dots and dashes, no path separators, no "..".
NAME_PATTERN = re.compile(r"^\w[\w.\-]*$")
MAX_SEED = 2**32 - 1


def check_name(value: str, what: str) -> str:
    """Validate a dataset or model name (no path separators, no "..", not empty).

    Raises:
        ValueError: The name could escape its folder or is not accepted by the registry.
    """
    if not NAME_PATTERN.match(value) or ".." in value or len(value) > 200:
        raise ValueError(
            f"{what} {value!r} may hold only letters, digits, '_', '.' and '-' "
            "(no path separators or '..')"
        )
    return value


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
    shape: tuple[Annotated[int, Field(ge=1)], Annotated[int, Field(ge=1)]]


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
        encoding: Text encoding of CSV files; ``auto`` reads UTF-8 (with or without BOM, or
            UTF-16 with a BOM) and falls back to Windows-1252 with a warning.
        partition_rows: Rows per partition of the run's copy of the data: the unit every
            stage reads, cleans and writes at a time (bounds memory on large tables).
        query: With a database ``source`` (``postgresql://user@host/db``, ``sqlite:///f.db``):
            the SQL whose result is the data (add ``ORDER BY`` for a reproducible digest).
        table: With a database ``source``: a table (``schema.table``) read whole, instead of
            ``query``.
        pii: Columns holding personal data: hashed as they are read (keyed by
            ``MLPIPE_PII_SALT``), so no artifact, log or registry entry holds their values;
            never features.
        allow_pii: Columns that look like personal data but are not (or may be kept as they
            are): training no longer refuses them.
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
    encoding: str = "auto"
    # Large enough that per-partition overheads vanish, small enough that a partition of a
    # wide table stays a few hundred MB in pandas.
    partition_rows: int = Field(default=1_000_000, ge=1)
    query: str | None = None
    table: str | None = None
    pii: list[str] = Field(default_factory=list)
    allow_pii: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _database_needs_what(self) -> DatasetSpec:
        from mlpipe.io.sources import is_database

        if is_database(self.source):
            if bool(self.query) == bool(self.table):
                raise ValueError(
                    "a database source needs dataset.query (SQL) or dataset.table, one of them"
                )
        elif self.query or self.table:
            key = "dataset.query" if self.query else "dataset.table"
            raise ValueError(f"{key} needs a database URL as the source (postgresql://...)")
        both = sorted(set(self.pii) & set(self.allow_pii))
        if both:
            raise ValueError(f"{', '.join(both)} listed in both dataset.pii and allow_pii")
        return self

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str | None) -> str | None:
        return None if value is None else check_name(value, "dataset.name")

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        import codecs

        if value != "auto":
            try:
                codecs.lookup(value)
            except LookupError:
                raise ValueError(f"unknown text encoding {value!r}") from None
        return value


class CleanConfig(_Model):
    """Cleaning rules.

    Attributes:
        drop_duplicates: Drop exact duplicate rows.
        missing: Per-column policy for missing values: ``drop`` the row, ``ffill`` (forward-fill
            in row order), or ``impute`` (left to the feature pipeline's imputer, which is fitted
            on the training split only, so no test statistics leak into training).
        missing_default: Policy for feature columns not named in ``missing``.
        max_drop_rate: Fail the run when cleaning drops more than this share of the rows
            (a sign that the data was misread, not cleaned).
    """

    drop_duplicates: bool = True
    missing: dict[str, MissingPolicy] = Field(default_factory=dict)
    missing_default: MissingPolicy = "impute"
    max_drop_rate: float = Field(default=0.2, ge=0, le=1)


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
        batch_alpha: On a new batch (predict, monitor, validate against a model), a ``mostly``
            expectation fails only when a one-sided binomial test rejects "the failure rate is
            within what ``mostly`` allows" at this level, so small batches are judged with
            their sample size in mind.
        drift: Drift check against the champion.
    """

    engine: Literal["fast", "gx"] = "fast"
    max_quarantine_rate: float = Field(default=0.05, ge=0, le=1)
    batch_alpha: float = Field(default=0.01, gt=0, lt=0.5)
    drift: DriftConfig = DriftConfig()


class SplitConfig(_Model):
    """Train/validation/test split by a salted hash of each row.

    A row's split depends only on its content (or its ``key``) and the salt, never on the seed
    or the row order, so every version trained with the same salt holds out the same rows and
    versions can be compared on rows that none of them trained on.

    Attributes:
        test_size: Share of rows held out for the test split.
        val_size: Share of rows for validation (early stopping).
        key: Column whose value decides the split (e.g. a customer id, so that all rows of one
            customer land in the same split); default: the whole row.
        salt: Salt of the hash; stored with every version.
    """

    test_size: float = Field(default=0.2, gt=0, lt=1)
    val_size: float = Field(default=0.1, gt=0, lt=1)
    key: str | None = None
    salt: str = Field(default="mlpipe", min_length=1)

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
        hidden_layers: Hidden layer widths of the MLP (each at least 1; empty: a linear model).
        dropout: Dropout after each hidden layer of the MLP.
        learning_rate: Adam learning rate.
        weight_decay: Adam weight decay (L2).
        batch_size: Mini-batch size, or ``auto``: 64 below 256k training rows, above that the
            power of two at or below rows / 2,000, at most 1024 (an epoch over millions of rows
            then takes thousands of steps rather than tens of thousands).
        max_epochs: Upper bound on epochs.
        patience: Early stopping: epochs without validation improvement before stopping.
        baseline: scikit-learn model trained in the same run for comparison
            (``linear``: logistic/ridge regression, ``hgb``: histogram gradient boosting).
        device: ``auto`` picks CUDA when available, else CPU.
        threads: torch intra-op threads; 0 keeps torch's default. One thread is fastest for
            small batches on a busy machine.
        workers: Processes the network trains in (DistributedDataParallel: gloo on CPU,
            nccl on GPUs): local processes, or one on each of as many Dask workers when
            ``execution.engine`` is ``dask``. Each trains on its share of every batch, so the
            batches, metrics and early stopping are those of one process; each uses
            ``threads`` threads.
    """

    architecture: Literal["mlp", "cnn"] = "mlp"
    hidden_layers: list[Annotated[int, Field(ge=1, le=65536)]] = Field(
        default_factory=lambda: [256, 128]
    )
    dropout: float = Field(default=0.2, ge=0, lt=1)
    learning_rate: float = Field(default=1e-3, gt=0)
    weight_decay: float = Field(default=0.0, ge=0)
    batch_size: int | Literal["auto"] = "auto"
    max_epochs: int = Field(default=100, ge=1)
    patience: int = Field(default=10, ge=1)
    baseline: Literal["linear", "hgb", "none"] = "linear"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int = Field(default=1, ge=0, le=256)
    workers: int = Field(default=1, ge=1, le=1024)

    @field_validator("batch_size", mode="before")
    @classmethod
    def _batch_size(cls, value: Any) -> Any:
        # One message instead of one per member of the union.
        if value == "auto" or (
            isinstance(value, int) and not isinstance(value, bool) and value >= 1
        ):
            return value
        raise ValueError(f"must be a positive integer or 'auto', not {value!r}")


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
        baseline_tolerance: How far the network may fall behind the run's own scikit-learn
            baseline on the primary metric: it is refused when the bootstrap interval of
            (network - baseline) lies entirely below ``-baseline_tolerance`` (0: not
            significantly worse).
        min_shared_rows: Fewest test rows that challenger and champion must share (rows
            neither trained on) for a comparison; with fewer the challenger is not promoted.
    """

    metric: str | None = None
    margin: float = Field(default=0.0, ge=0)
    test: Literal["bootstrap", "mcnemar"] = "bootstrap"
    resamples: int = Field(default=1000, ge=100, le=100_000)
    confidence: float = Field(default=0.95, gt=0.5, lt=1)
    slices: list[str] = Field(default_factory=lambda: ["class"])
    slice_tolerance: float = Field(default=0.05, ge=0)
    min_metrics: dict[str, float] = Field(default_factory=dict)
    baseline_tolerance: float = Field(default=0.0, ge=0)
    min_shared_rows: int = Field(default=30, ge=1)


class TrackingConfig(_Model):
    """MLflow tracking and registry.

    Attributes:
        uri: Tracking URI. Empty means ``MLFLOW_TRACKING_URI`` if set, else a local SQLite file
            ``mlflow.db`` with artifacts in ``mlruns/`` in the working directory. Never put a
            password here: use ``MLFLOW_TRACKING_URI``, ``MLFLOW_TRACKING_PASSWORD`` or
            ``PGPASSWORD`` in the environment.
        experiment: Experiment name.
        model_name: Registered model name; defaults to ``mlpipe-<dataset name>``.
        retry_seconds: Upper bound on the time spent retrying an unreachable tracking server
            before the run fails with one line.
    """

    uri: str | None = None
    experiment: str = Field(default="mlpipe", min_length=1)
    model_name: str | None = None
    retry_seconds: float = Field(default=60, ge=1, le=3600)

    @field_validator("model_name")
    @classmethod
    def _safe_model_name(cls, value: str | None) -> str | None:
        return None if value is None else check_name(value, "tracking.model_name")


class WindowConfig(_Model):
    """What a training run started by a deployment (cron, ``retrain``, drift) trains on.

    Monitoring keeps every batch that passed its quality gate (and holds the target) as a
    dated partition in ``schedule.batch_store``; such a run trains on a window over them.

    Attributes:
        reference: Include the dataset's source itself.
        batches: Only the last N accepted batches (``null``: all of them; 0: none).
        days: Only batches accepted in the last N days (``null``: any age).
    """

    reference: bool = True
    batches: int | None = Field(default=None, ge=0)
    days: float | None = Field(default=None, gt=0)


class ScheduleConfig(_Model):
    """When `mlpipe deploy` runs things on its own, and on what data.

    Attributes:
        cron: Cron expression of the scheduled training run (``null`` for none).
        timezone: Time zone of the cron expression.
        monitor_cron: Cron of the monitoring (drift) run; ``null`` for none.
        monitor_data: File the monitoring run validates (new batches land there).
        cooldown_minutes: After a drift-triggered retraining, no other one for this long.
        batch_store: Folder of the accepted monitoring batches; empty: beside the source
            (``<source>.batches``; ``.mlpipe/batches/<name>`` for a built-in dataset).
        window: The data deployment-started training runs use.
    """

    cron: str | None = "0 2 * * *"
    timezone: str = "UTC"
    monitor_cron: str | None = None
    monitor_data: str | None = None
    cooldown_minutes: float = Field(default=360, ge=0)
    batch_store: str | None = None
    window: WindowConfig = WindowConfig()


class ExecutionConfig(_Model):
    """Where partition-wise data work runs.

    Attributes:
        engine: ``local`` (this process, the default) or ``dask`` (partitions mapped over a
            Dask cluster).
        address: An existing ``dask.distributed`` scheduler (``tcp://host:8786``). Empty: a
            local cluster of ``workers`` processes started for the run and stopped with it.
            Credentials never go here: a secured scheduler's come from Dask's own
            configuration in the environment (``DASK_DISTRIBUTED__COMM__TLS__...``).
        workers: Worker processes of the local cluster (one thread each).
    """

    engine: Literal["local", "dask"] = "local"
    address: str | None = None
    workers: int = Field(default=2, ge=1, le=256)

    @field_validator("address")
    @classmethod
    def _scheduler_address(cls, value: str | None) -> str | None:
        if not value:
            return None
        scheme, sep, rest = value.partition("://")
        if not sep or scheme not in ("tcp", "tls", "inproc", "ucx", "ws", "wss") or not rest:
            raise ValueError(
                f"'{value}' is not a Dask scheduler address (e.g. tcp://127.0.0.1:8786)"
            )
        if "@" in rest:
            raise ValueError("the scheduler address must not hold credentials")
        return value


class Config(_Model):
    """The whole mlpipe configuration."""

    seed: int = Field(default=42, ge=0, le=MAX_SEED)
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
    execution: ExecutionConfig = ExecutionConfig()

    def safe_dump(self) -> dict[str, Any]:
        """The config as JSON-able data with every secret redacted (for logs and artifacts)."""
        return dict(redact_obj(self.model_dump(mode="json")))


def _format_validation_error(err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "<root>"
        if e["type"] == "extra_forbidden":
            parts.append(f"unknown config key '{loc}'")
        else:
            message = str(e["msg"]).removeprefix("Value error, ")
            parts.append(f"config key '{loc}': {message}")
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
    result: dict[str, Any] = json.loads(json.dumps(data, default=str))
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


def _secret_paths(value: Any, path: str = "") -> list[str]:
    if isinstance(value, str):
        return [path] if has_secret(value) else []
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _secret_paths(v, f"{path}.{k}" if path else k)]
    if isinstance(value, list | tuple):
        return [p for i, v in enumerate(value) for p in _secret_paths(v, f"{path}[{i}]")]
    return []


def build_config(data: dict[str, Any] | None = None, overrides: list[str] | None = None) -> Config:
    """Validate a mapping (plus overrides) into a :class:`Config`.

    Args:
        data: Nested configuration mapping, e.g. parsed YAML.
        overrides: ``key=value`` strings applied on top.

    Returns:
        The validated, frozen configuration.

    Raises:
        ConfigError: Unknown key, wrong type, invalid value or a credential in a value; the
            message names the key.
    """
    merged = apply_overrides(data or {}, overrides or [])
    try:
        config = Config.model_validate(merged)
    except ValidationError as err:
        raise ConfigError(_format_validation_error(err)) from None
    leaked = _secret_paths(config.model_dump(mode="json"))
    if leaked:
        raise ConfigError(
            f"config key '{leaked[0]}' holds a password: configs are logged and stored, so "
            "pass credentials in the environment (MLFLOW_TRACKING_URI, "
            "MLFLOW_TRACKING_PASSWORD, MLPIPE_DATA_PASSWORD, PGPASSWORD) instead"
        )
    return config


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
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ConfigError(f"config file {p} is not valid YAML: {first}") from None
        except OSError as err:
            raise ConfigError(f"cannot read config file {p}: {err.strerror}") from None
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
        A flat mapping with JSON-encoded lists and ``None`` as ``"null"``; secrets redacted.
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
        else:
            out[key] = str(value)

    walk(redact_obj(config.model_dump(mode="json")), prefix)
    return out
