"""Pre-flight: every config value checked against the resolved schema before any heavy work.

Runs right after loading (in the CLI before Prefect starts, and in the flow's load stage), so a
config that cannot finish never trains: unknown metrics or slices, cleaning rules for absent
columns, a CNN without images, a GPU that is not there, an invalid model name, a split that
leaves a class without training rows.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from mlpipe.config import Config, ExecutionConfig, check_name
from mlpipe.data.datasets import model_name
from mlpipe.data.features import magnitude_problem
from mlpipe.data.ingest import Extra, Ingested, Profile
from mlpipe.errors import ConfigError, DataError
from mlpipe.learn.metrics import DEFAULT_PRIMARY, for_task
from mlpipe.serving.schema import Schema, to_numbers


def config_problems(config: Config, schema: Schema) -> list[str]:
    """Config values that cannot work with this schema (empty when all is well)."""
    problems: list[str] = []
    task = schema.task
    known = for_task(task)
    promo = config.promotion
    metric = promo.metric or DEFAULT_PRIMARY[task]
    if metric not in known:
        problems.append(f"promotion.metric '{metric}' is not a {task} metric ({', '.join(known)})")
    wrong = [k for k in promo.min_metrics if k not in known]
    if wrong:
        problems.append(
            f"promotion.min_metrics names {', '.join(wrong)}: "
            f"not {task} metrics ({', '.join(known)})"
        )
    if promo.test == "mcnemar" and metric != "accuracy":
        problems.append(f"promotion.test=mcnemar compares accuracy, but the metric is {metric}")
    for name in promo.slices:
        if name == "class":
            continue  # per-class slices; a regression simply has none
        if name not in schema.features:
            problems.append(f"promotion.slices names '{name}', which is not a feature column")
    unknown = sorted(set(config.clean.missing) - set(schema.features))
    if unknown:
        problems.append(f"clean.missing names columns that are not features: {', '.join(unknown)}")
    if config.train.architecture == "cnn" and schema.image_shape is None:
        problems.append("train.architecture=cnn needs an image dataset (dataset.image)")
    ex, ranks = config.execution, config.train.workers
    if ranks > 1 and ex.engine == "dask" and not ex.address and ranks > ex.workers:
        problems.append(
            f"train.workers={ranks} ranks need {ranks} Dask workers (one rank each), and the "
            f"local cluster has execution.workers={ex.workers}"
        )
    if config.train.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            problems.append("train.device=cuda, but torch sees no CUDA device here")
    try:
        check_name(model_name(config.dataset, config.tracking.model_name), "model name")
    except ValueError as err:
        problems.append(str(err))
    return problems


def data_problems(config: Config, schema: Schema, profile: Profile) -> list[str]:
    """What the data itself rules out with this config: split key, classes too small to split.

    Judged on the table's profile: exact row and class counts, exact magnitudes of
    numeric-typed columns (a numeric column stored as text is judged on the sample).
    """
    problems: list[str] = []
    key = config.split.key
    if key is not None and key not in profile.columns:
        problems.append(f"split.key '{key}' is not a column of the data")
    rows = profile.rows
    for name, share in (("test", config.split.test_size), ("validation", config.split.val_size)):
        if rows * share < 1:
            problems.append(f"{rows} rows leave no {name} rows at split size {share}")
    sizes = {
        c: profile.abs_max[c]
        if c in profile.abs_max
        else float(to_numbers(profile.sample[c]).abs().max())
        for c in schema.numeric
        if c in profile.columns
    }
    magnitude = magnitude_problem(pd.Series(sizes, dtype="float64"))
    if magnitude is not None:
        problems.append(magnitude)
    if schema.task != "regression" and profile.target_counts is not None:
        counts = profile.target_counts
        single = [str(label) for label, n in counts.items() if n < 2]
        if single:
            shown = ", ".join(repr(s) for s in single[:5])
            problems.append(
                f"class(es) {shown} have a single row: a class needs at least 2 rows "
                "(one to learn from, one to check); remove or merge them"
            )
    return problems


def unwritable(folder: Path) -> str | None:
    """Why nothing can be written in ``folder`` (or the nearest parent that exists), if so.

    A scratch file is written there and removed; nothing is created.
    """
    probe = folder.absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        if not probe.is_dir():
            raise NotADirectoryError(20, "Not a directory")
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as err:
        return err.strerror or type(err).__name__
    return None


def path_problems(config: Config) -> list[str]:
    """Folders the run must write to (run directories, a local SQLite store) that it cannot.

    Checked before anything runs, so a read-only mount or an impossible path fails here, not
    after training.
    """
    from mlpipe.io.tracking import resolve_uri, sqlite_path

    folders = [("runs_dir", Path(config.runs_dir))]
    db = sqlite_path(resolve_uri(config.tracking.uri))
    if db is not None:
        folders.append(("tracking.uri (SQLite folder)", db.parent))
    problems = []
    for key, folder in folders:
        reason = unwritable(folder)
        if reason is not None:
            problems.append(f"{key}: cannot write to {folder}: {reason}")
    return problems


def output_problems(outputs: dict[str, str | None], inputs: Sequence[str] = ()) -> list[str]:
    """Output files (``{"--report": path}``) that must not or cannot be written, as messages.

    An output may not be one of the ``inputs``, another output, or an existing thing that is
    not a regular file (a folder, ``/dev/null``, a pipe): the atomic write would replace it.
    """
    problems = []
    seen: dict[str, str] = {os.path.realpath(p): "the input" for p in inputs}
    for option, path in outputs.items():
        if not path:
            continue
        target = Path(path)
        real = os.path.realpath(target)
        if real in seen:
            problems.append(f"{option} {path} is {seen[real]}: choose another file")
            continue
        seen[real] = f"also {option}"
        if target.exists() and not target.is_file():
            kind = "a directory" if target.is_dir() else "not a regular file"
            problems.append(f"{option} {path}: cannot write there: is {kind}")
            continue
        reason = unwritable(target.parent)
        if reason is not None:
            problems.append(f"{option} {path}: cannot write there: {reason}")
    return problems


def check(config: Config, schema: Schema, profile: Profile | None = None) -> None:
    """Raise one error listing everything wrong, or return quietly.

    Raises:
        ConfigError: A config value cannot work with this data.
        DataError: The data cannot be split or learned with this config.
    """
    problems = config_problems(config, schema)
    if problems:
        raise ConfigError("; ".join(problems))
    if profile is not None:
        problems = data_problems(config, schema, profile)
        if problems:
            raise DataError("; ".join(problems))
    check_paths(config)


def check_paths(config: Config) -> None:
    """Raise one error listing the configured folders that cannot be written.

    Raises:
        ConfigError: Naming each folder and why.
    """
    problems = path_problems(config)
    if problems:
        raise ConfigError("; ".join(problems))


def check_execution(execution: ExecutionConfig, key: str = "execution.address") -> None:
    """Refuse a Dask scheduler address that does not accept connections.

    ``key``: how the user gave the address (a config key, a command-line flag).

    Raises:
        ConfigError: Naming the address and why (refused, unknown host, timed out).
    """
    from mlpipe.servers import reachable

    address = execution.address
    if execution.engine != "dask" or not address:
        return
    problem = reachable(address)
    if problem is not None:
        raise ConfigError(f"cannot reach the Dask scheduler {address} ({key}): {problem}")


def prepare(config: Config, out: str | Path, extra: Extra | None = None) -> tuple[Ingested, Schema]:
    """Copy the source into partitions at ``out``, resolve its schema, run the pre-flight.

    One streaming pass reads the source (and ``extra``: accepted batches after it); the exact
    identifier check re-reads only the candidate columns of the copy. On any failure nothing
    is left at ``out``.

    Raises:
        DataError: Unreadable or unusable data.
        ConfigError: A config value cannot work with this data.
    """
    from mlpipe.data.ingest import identifiers_in, ingest
    from mlpipe.data.roles import resolve_profiled, target_of
    from mlpipe.io.tables import iter_partitions

    spec = config.dataset
    ingested = ingest(spec, out, target_of(spec), spec.partition_rows, extra or Extra())
    try:
        schema = resolve_profiled(
            ingested.profile,
            spec,
            lambda c: identifiers_in(
                iter_partitions(ingested.path, list(c), "identifier check"), c
            ),
        )
        check(config, schema, ingested.profile)
    except BaseException:
        shutil.rmtree(ingested.path, ignore_errors=True)
        raise
    return ingested, schema
