"""Column roles and the learning task, inferred from the data and the dataset spec.

Inference refuses what would silently train on garbage: a target mixing numbers and text, a
target that cannot be learned, and it keeps out of the features what only looks like data:
identifiers (unique integer row ids, key-like names), dates, free text, all-empty columns and
columns that restate the target.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Callable

import numpy as np
import pandas as pd

from mlpipe.config import DatasetSpec
from mlpipe.data.datasets import BUILTINS, dataset_name, is_builtin
from mlpipe.data.ingest import (
    MAX_TRACKED_LABELS,
    SAMPLE_ROWS,
    Profile,
    identifiers_in,
    profile_frame,
)
from mlpipe.data.privacy import refusal, suspects
from mlpipe.errors import ConfigError, DataError
from mlpipe.serving.schema import Schema, TaskType, to_jsonable, to_numbers

# A text column whose values parse as numbers this often is a numeric column with typos.
NUMERIC_PARSE_SHARE = 0.95
# An integer target with at most this many distinct values is treated as class labels.
MAX_INTEGER_CLASSES = 20
# Fewest rows to train on at all (each split needs rows of its own).
MIN_ROWS = 20
# Text columns with at least this many rows and mostly distinct values are identifiers/free text.
MIN_ROWS_FOR_CARDINALITY = 50
# Leakage: a column that alone leaves under 5% of a majority guess's errors (with at least 10
# rows per value), or a numeric column correlated with a numeric target at |r| >= 0.995.
LEAK_ERROR_SHARE = 0.05
LEAK_MIN_ROWS_PER_VALUE = 10
LEAK_CORRELATION = 0.995
_ID_NAME = re.compile(
    r"(?i)^(?:id|key|index|idx|uuid|guid|row|rownum|row_?id|row_?number|record_?id|"
    r"unnamed: ?\d+)$|(?:^|[_\-\s.])(?:id|key|uuid|guid|no|nr|number)$|[a-z](?:Id|ID|Key)$"
)

log = logging.getLogger("mlpipe.load")


def looks_numeric(series: pd.Series) -> bool:
    """Return whether a column holds numbers (possibly stored as text with a few bad values)."""
    if isinstance(series.dtype, pd.CategoricalDtype) or pd.api.types.is_bool_dtype(series):
        return False  # coded answers (1..5) in a category column are categories, not amounts
    if pd.api.types.is_numeric_dtype(series):
        return True
    if pd.api.types.is_datetime64_any_dtype(series):
        return False
    present = series.dropna()
    if present.empty:
        return False
    if len(present) > SAMPLE_ROWS:  # a share: a sample estimates it
        present = present.iloc[np.linspace(0, len(present) - 1, SAMPLE_ROWS).astype(np.int64)]
    parsed = pd.to_numeric(present.astype("str").str.strip(), errors="coerce")
    return bool(parsed.notna().mean() >= NUMERIC_PARSE_SHARE)


def looks_like_dates(series: pd.Series) -> bool:
    """Return whether a text column holds dates (``2024-01-31``, ``31/01/2024 10:00``...)."""
    if pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
        return False
    present = series.dropna().astype("str").str.strip()
    if present.empty or not present.str.contains(r"\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}").all():
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "could not infer format" is the point of the test
        parsed = pd.to_datetime(present, errors="coerce", format="mixed")
    return bool(parsed.notna().mean() >= NUMERIC_PARSE_SHARE)


def looks_like_identifier(series: pd.Series, name: str) -> bool:
    """Whether a column identifies rows rather than describing them.

    Integer columns whose values are all distinct and either sorted (row numbers, often in a
    file sorted by something else), a shuffled run of consecutive integers, or named like a key
    (``id``, ``customer_id``, ``Unnamed: 0``); text columns named like a key with distinct
    values. Trained on, such a column memorises row order: a file sorted by the target gives
    a perfect, useless model. Decided by :func:`mlpipe.data.ingest.identifiers_in`, the same
    code that judges a partitioned table.
    """
    candidate = _candidate(series.dropna(), series, name)
    if candidate is None:
        return False
    return bool(identifiers_in([pd.DataFrame({name: series})], {name: candidate}))


def _candidate(present: pd.Series, series: pd.Series, name: str) -> tuple[bool, bool] | None:
    """``(numeric, named like a key)`` when a column could identify rows, judged on a sample.

    Necessary conditions of :func:`looks_like_identifier` that hold on any sample of an
    identifier: at least 10 distinct values, integral numbers or a key-like name.
    """
    if len(present) < 10 or not present.is_unique:
        return None
    named = bool(_ID_NAME.search(name.strip()))
    if not looks_numeric(series):
        text_id = named and not isinstance(series.dtype, pd.CategoricalDtype)
        return (False, True) if text_id else None
    numbers = to_numbers(present)
    if numbers.isna().any() or not np.all(numbers == np.round(numbers)):
        return None
    return True, named


def _integer_valued(values: pd.Series) -> bool:
    return bool(np.all(np.isfinite(values)) and np.all(values == np.round(values)))


def infer_task(target: pd.Series, distinct: pd.Index | None = None) -> TaskType:
    """Infer the learning task from the target column.

    Text, boolean or category targets are classification; numbers are classification when
    they are integer-valued with few distinct values, regression otherwise.

    Args:
        target: The target column, or a sample of it (missing values are ignored).
        distinct: Every distinct present value of the whole column, when ``target`` is a
            sample (``None`` with a sample: too many to count, a measurement).

    Returns:
        ``binary``, ``multiclass`` or ``regression``.
    """
    present = target.dropna()
    values_of = present if distinct is None else pd.Series(distinct)
    n_unique = values_of.nunique()
    if not looks_numeric(present):
        return "binary" if n_unique <= 2 else "multiclass"
    values = to_numbers(values_of).dropna()
    if _integer_valued(values) and n_unique <= MAX_INTEGER_CLASSES:
        return "binary" if n_unique <= 2 else "multiclass"
    return "regression"


Identify = Callable[[dict[str, tuple[bool, bool]]], set[str]]


def infer_roles(
    frame: pd.DataFrame, target: str, exclude: list[str], identify: Identify | None = None
) -> tuple[list[str], list[str], list[str], list[str]]:
    """Split the feature columns of a frame into numeric, categorical and ignored.

    Args:
        frame: The raw table, or a uniform sample of it in file order.
        target: Target column, never a feature.
        exclude: Columns the user asked to ignore.
        identify: Given the columns that look like identifiers in ``frame`` (column ->
            ``(numeric, named like a key)``), which of them are, judged on every row of the
            table (:func:`mlpipe.data.ingest.identifiers_in`). Default: judged on ``frame``.

    Returns:
        ``(numeric, categorical, ignored, identifiers)`` in table order; ``identifiers`` is the
        part of ``ignored`` recognised as row identifiers.
    """
    features = [c for c in frame.columns if c != target and c not in exclude]
    candidates = {}
    for col in features:
        found = _candidate(frame[col].dropna(), frame[col], str(col))
        if found is not None:
            candidates[col] = found
    if identify is None:
        identify = lambda c: identifiers_in([frame[list(c)]], c)  # noqa: E731
    confirmed = identify(candidates) if candidates else set()
    numeric: list[str] = []
    categorical: list[str] = []
    ignored: list[str] = list(exclude)
    identifiers: list[str] = []
    for col in features:
        series = frame[col]
        present = series.dropna()
        if present.empty:
            ignored.append(col)  # all missing: nothing to learn from
        elif col in confirmed:
            ignored.append(col)
            identifiers.append(col)
        elif pd.api.types.is_datetime64_any_dtype(series) or looks_like_dates(series):
            ignored.append(col)
        elif looks_numeric(series):
            numeric.append(col)
        else:
            distinct = present.nunique()
            if len(present) >= MIN_ROWS_FOR_CARDINALITY and distinct > 0.5 * len(present):
                ignored.append(col)  # free text or a text identifier
            else:
                categorical.append(col)
    return numeric, categorical, ignored, identifiers


def _determines(pairs: pd.DataFrame) -> bool:
    """Whether the codes ``x`` alone predict the label codes ``y`` almost perfectly.

    Each value of ``x`` predicts its most common label; a leak leaves fewer than
    ``LEAK_ERROR_SHARE`` of the errors a majority-class guess makes. Only columns with at least
    ``LEAK_MIN_ROWS_PER_VALUE`` rows per value qualify, so a near-unique column is not pure by
    accident.
    """
    rows = len(pairs)
    values = pairs["x"].nunique()
    if values < 2 or values * LEAK_MIN_ROWS_PER_VALUE > rows:
        return False
    hits = pairs.groupby(["x", "y"]).size().groupby(level=0).max().sum()
    majority = pairs["y"].value_counts().iloc[0]
    return bool(rows - hits <= LEAK_ERROR_SHARE * (rows - majority))


def _follows_row_order(x: pd.Series, y: pd.Series, labels: bool) -> bool:
    """Whether ``x`` runs through the file in order while the file is sorted by the target.

    A timestamp or sequence number in a file sorted (or grouped) by the target separates the
    classes by thresholds alone: it restates the target through row order, not the data.
    """
    xs = to_numbers(x)
    if xs.isna().any() or xs.nunique() < 0.9 * len(xs):
        return False
    if not (xs.is_monotonic_increasing or xs.is_monotonic_decreasing):
        return False
    if labels:
        changes = int((y != y.shift()).sum()) - 1
        return changes <= 2 * y.nunique()
    ys = to_numbers(y)
    return bool(ys.is_monotonic_increasing or ys.is_monotonic_decreasing)


def _is_text(series: pd.Series) -> bool:
    return pd.api.types.is_string_dtype(series) and not isinstance(
        series.dtype, pd.CategoricalDtype
    )


def find_leaks(
    frame: pd.DataFrame, target: str, columns: list[str], numeric: list[str] | None = None
) -> list[str]:
    """Columns that restate the target.

    A copy or relabelling of the target (one-to-one), a column that alone predicts a label
    almost perfectly (a noisy code, a finer label such as ``yes_web``/``yes_app``, a status
    with a few ``unknown``), a number that runs in file order through a file sorted by the
    target (a timestamp), or (numbers) a column almost perfectly correlated with a numeric
    target: training on them would report a useless model as excellent.

    Args:
        frame: The raw table (or a sample of it in file order).
        target: Target column.
        columns: Candidate feature columns.
        numeric: Which candidates hold numbers, when already known (else inferred).

    Returns:
        The leaking columns, in the order given.
    """
    leaks = []
    y = frame[target]
    y_codes = pd.Series(pd.factorize(y)[0], index=frame.index)  # -1: missing
    # Labels unless the target is a number with many values (then: correlation).
    labels = not (looks_numeric(y) and y.nunique() > MAX_INTEGER_CLASSES)
    for col in columns:
        x = frame[col]
        rows = x.notna() & (y_codes >= 0)
        if rows.sum() < 10 or y_codes[rows].nunique() < 2:
            continue
        x_col, y_col = x[rows], y[rows]
        x_numeric = col in numeric if numeric is not None else looks_numeric(x_col)
        if x_numeric and _follows_row_order(x_col, y_col, labels):
            leaks.append(col)
            continue
        if not labels and x_numeric:
            xs, ys = to_numbers(x_col), to_numbers(y_col)
            if xs.std() > 0 and abs(float(xs.corr(ys))) >= LEAK_CORRELATION:
                leaks.append(col)
            continue
        n_x, n_y = x_col.nunique(), y_codes[rows].nunique()
        if n_x != n_y and n_x * LEAK_MIN_ROWS_PER_VALUE > len(x_col):
            continue  # neither one-to-one nor enough rows per value to predict the label
        # Integer codes of the values (as text, so 1 and "1" are one value): cheap to group.
        plain = _is_text(x_col) or pd.api.types.is_numeric_dtype(x_col)
        pairs = pd.DataFrame(
            {
                "x": pd.factorize(x_col if plain else x_col.astype("str"))[0],
                "y": y_codes[rows].to_numpy(),
            }
        )
        one_to_one = (
            pairs.groupby("x")["y"].nunique().max() == 1
            and pairs.groupby("y")["x"].nunique().max() == 1
        )
        if one_to_one or _determines(pairs):
            leaks.append(col)
    return leaks


def _check_target(profile: Profile, task: TaskType | None) -> None:
    """Refuse targets that cannot be learned: all missing, case variants, numbers and text."""
    target = str(profile.target)
    series = profile.sample[target]
    counts = profile.target_counts
    if (counts is not None and counts.empty) or series.dropna().empty:
        raise DataError(f"target column '{target}' has no values (all missing)")
    if pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
        return
    # Every check below depends only on the distinct labels: exact, and cheap on any size.
    distinct = series.dropna().unique() if counts is None else counts.index
    text = pd.Series(distinct).astype("str").str.strip()
    spellings = pd.Series(text.unique())
    variants = spellings.groupby(spellings.str.casefold()).agg(list)
    clashes = [v for v in variants if len(v) > 1]
    if clashes:
        shown = "; ".join("/".join(repr(s) for s in sorted(v)) for v in clashes[:3])
        raise DataError(
            f"target column '{target}' has labels that differ only in letter case ({shown}): "
            "they would be learned as different classes; make them one spelling in the data"
        )
    if isinstance(series.dtype, pd.CategoricalDtype):
        return
    parsed = pd.to_numeric(text, errors="coerce")
    numbers, words = text[parsed.notna()], text[parsed.isna()]
    if len(numbers) and len(words) and task != "multiclass" and task != "binary":
        show = lambda s: ", ".join(repr(v) for v in s.unique()[:3])  # noqa: E731
        raise DataError(
            f"target column '{target}' mixes numbers ({show(numbers)}) and text "
            f"({show(words)}): fix those values, or pass --task to say which it is"
        )


def target_of(spec: DatasetSpec) -> str | None:
    """The target column a spec names, or its built-in dataset's."""
    builtin = BUILTINS.get(spec.source) if is_builtin(spec.source) else None
    return spec.target or (builtin.target if builtin else None)


def resolve_schema(frame: pd.DataFrame, spec: DatasetSpec) -> Schema:
    """Resolve the schema of a whole in-memory table: :func:`resolve_profiled`'s one partition."""
    return resolve_profiled(
        profile_frame(frame, target_of(spec)), spec, lambda c: identifiers_in([frame[list(c)]], c)
    )


def resolve_profiled(profile: Profile, spec: DatasetSpec, identify: Identify) -> Schema:
    """Resolve target, task and column roles from the spec, built-in defaults and the data.

    Roles and leaks are inferred on the profile's sample; what must be exact uses every row:
    the row count and target labels from the profile, identifiers via ``identify``.

    Args:
        profile: The table's :class:`~mlpipe.data.ingest.Profile`.
        spec: The dataset spec from the config.
        identify: Confirms identifier candidates on every row (see :func:`infer_roles`).

    Returns:
        The resolved schema.

    Raises:
        DataError: Target missing or unusable, named columns absent, or too few rows.
        ConfigError: No target named, or an inconsistent image spec.
    """
    builtin = BUILTINS.get(spec.source) if is_builtin(spec.source) else None
    target = target_of(spec)
    if not target:
        raise ConfigError("no target column: pass --target COL or set dataset.target")
    columns = profile.columns
    if target not in columns:
        shown = ", ".join(map(str, columns[:30]))
        more = f" (+{len(columns) - 30} more)" if len(columns) > 30 else ""
        raise DataError(f"target column '{target}' not found; columns are: {shown}{more}")
    if profile.rows < MIN_ROWS:
        raise DataError(
            f"only {profile.rows} row{'s' if profile.rows != 1 else ''}; "
            f"at least {MIN_ROWS} are needed to train"
        )
    sample = profile.sample
    explicit_task = spec.task or (builtin.task if builtin else None)
    _check_target(profile, explicit_task)
    counts = profile.target_counts
    labels = sample[target].dropna()
    if explicit_task:
        task_type = explicit_task
    elif counts is None:  # too many distinct values to be labels
        task_type = "regression" if looks_numeric(labels) else "multiclass"
    else:
        task_type = infer_task(sample[target], counts.index)
    if task_type != "regression":
        n_classes = len(counts) if counts is not None else None
        present = int(counts.sum()) if counts is not None else profile.rows
        if counts is not None and len(counts) < 2:
            raise DataError(
                f"target column '{target}' has a single class ({to_jsonable(counts.index[0])!r}): "
                "nothing to learn"
            )
        if n_classes is None or n_classes > max(100, present // 2):
            many = f"{n_classes}" if n_classes is not None else f"over {MAX_TRACKED_LABELS}"
            raise DataError(
                f"target column '{target}' has {many} distinct values in {present} "
                "rows: too many classes (an identifier or a number? pass --task regression)"
            )
    elif to_numbers(pd.Series(counts.index) if counts is not None else labels).isna().all():
        raise DataError(f"target column '{target}' holds no numbers for a regression")
    ignore = list(dict.fromkeys([*spec.ignore, *(builtin.ignore if builtin else ()), *spec.pii]))
    named = [*(spec.numeric or []), *(spec.categorical or []), *ignore, *spec.allow_pii]
    absent = [c for c in named if c not in columns]
    if absent:
        raise DataError(f"configured columns not in the data: {', '.join(absent)}")
    if target in spec.pii:
        raise ConfigError(f"the target '{target}' is listed in dataset.pii: it cannot be hashed")
    personal = [c for c in [*(spec.numeric or []), *(spec.categorical or [])] if c in spec.pii]
    if personal:
        raise ConfigError(
            f"{', '.join(personal)} listed in dataset.pii and as features: personal data is "
            "never a feature"
        )
    found = suspects(sample, [target, *spec.pii, *spec.allow_pii])
    if found:
        raise DataError(refusal(found))
    inferred_num, inferred_cat, ignored, identifiers = infer_roles(sample, target, ignore, identify)
    # Explicit roles win over inference; the remaining columns keep their inferred role.
    explicit_num, explicit_cat = list(spec.numeric or []), list(spec.categorical or [])
    explicit = set(explicit_num) | set(explicit_cat)
    numeric = explicit_num + [c for c in inferred_num if c not in explicit]
    categorical = explicit_cat + [c for c in inferred_cat if c not in explicit]
    ignored = [c for c in ignored if c not in explicit]
    identifiers = [c for c in identifiers if c not in explicit]
    if target in numeric + categorical:
        raise DataError(f"target column '{target}' is also listed as a feature")
    if identifiers:
        log.warning(
            "identifier column(s) %s ignored as features (unique row ids or keys); name them "
            "in dataset.numeric to use them",
            ", ".join(identifiers),
        )
    leaks = find_leaks(
        sample, target, [c for c in numeric + categorical if c not in explicit], numeric
    )
    if leaks:
        log.warning(
            "leakage: %s alone predict(s) the target '%s' almost perfectly; ignored as features "
            "(name it in dataset.numeric or dataset.categorical to use it)",
            ", ".join(leaks),
            target,
        )
        numeric = [c for c in numeric if c not in leaks]
        categorical = [c for c in categorical if c not in leaks]
        ignored = [*ignored, *leaks]

    image = spec.image or (builtin.image if builtin else None)
    pixels: list[str] = []
    shape = None
    if image is not None:
        pixels = list(image.pixel_columns) or [
            str(c) for c in columns if str(c).startswith(image.pixel_prefix)
        ]
        h, w = image.shape
        if len(pixels) != h * w:
            raise ConfigError(
                f"dataset.image.shape {h}x{w} needs {h * w} pixel columns, found {len(pixels)}"
            )
        missing = [p for p in pixels if p not in columns]
        if missing:
            raise DataError(f"pixel columns not in the data: {', '.join(missing[:5])}")
        numeric = pixels + [c for c in numeric if c not in pixels]
        categorical = [c for c in categorical if c not in pixels]
        ignored = [c for c in ignored if c not in pixels]
        shape = (h, w)
    if not numeric and not categorical:
        raise DataError("no feature columns left after removing the target and ignored columns")
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
        identifiers=identifiers,
        pii=list(spec.pii),
    )
