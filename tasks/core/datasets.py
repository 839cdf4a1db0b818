"""Built-in datasets (shipped inside installed packages, nothing downloads) and file reading."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from tasks.core.config import DatasetSpec, ImageSpec, TaskType
from tasks.core.errors import DataError

CSV_SUFFIXES = {".csv", ".txt", ".tsv"}
PARQUET_SUFFIXES = {".parquet", ".pq"}


@dataclass(frozen=True)
class BuiltinDataset:
    """A dataset that ships inside an installed package."""

    name: str
    description: str
    target: str
    task: TaskType
    loader: Callable[[], pd.DataFrame]
    origin: str
    image: ImageSpec | None = None
    ignore: tuple[str, ...] = field(default_factory=tuple)


def _digits() -> pd.DataFrame:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    columns = [f"pixel_{r}_{c}" for r in range(8) for c in range(8)]
    frame = pd.DataFrame(bunch.data.astype("int64"), columns=columns)
    frame["digit"] = bunch.target.astype("int64")
    return frame


def _penguins() -> pd.DataFrame:
    from palmerpenguins import load_penguins

    return load_penguins()


def _breast_cancer() -> pd.DataFrame:
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame
    frame.columns = [c.replace(" ", "_") for c in frame.columns]
    return frame


def _diabetes() -> pd.DataFrame:
    from sklearn.datasets import load_diabetes

    # scaled=False keeps the clinical units, which is what a user's raw table would hold.
    return load_diabetes(as_frame=True, scaled=False).frame


BUILTINS: dict[str, BuiltinDataset] = {
    d.name: d
    for d in (
        BuiltinDataset(
            name="digits",
            description="8x8 handwritten digits, 1,797 images, 10 classes (image, multiclass)",
            target="digit",
            task="multiclass",
            loader=_digits,
            origin="scikit-learn load_digits (UCI optical recognition of handwritten digits)",
            image=ImageSpec(pixel_prefix="pixel_", shape=(8, 8)),
        ),
        BuiltinDataset(
            name="penguins",
            description="Palmer penguins, 344 birds, species from body measurements "
            "(tabular, categorical columns, missing values, multiclass)",
            target="species",
            task="multiclass",
            loader=_penguins,
            origin="palmerpenguins package (Gorman, Williams & Fraser 2014)",
            # The survey year is a time stamp, not a property of the bird.
            ignore=("year",),
        ),
        BuiltinDataset(
            name="breast_cancer",
            description="Wisconsin diagnostic breast cancer, 569 rows, 30 numeric features "
            "(binary)",
            target="target",
            task="binary",
            loader=_breast_cancer,
            origin="scikit-learn load_breast_cancer",
        ),
        BuiltinDataset(
            name="diabetes",
            description="Diabetes progression, 442 patients, 10 numeric features (regression)",
            target="target",
            task="regression",
            loader=_diabetes,
            origin="scikit-learn load_diabetes (unscaled)",
        ),
    )
}


def is_builtin(source: str) -> bool:
    """Return whether ``source`` names a built-in dataset."""
    return source in BUILTINS


def dataset_name(spec: DatasetSpec) -> str:
    """Short name of a dataset: explicit name, built-in name, or the file stem."""
    if spec.name:
        return spec.name
    if is_builtin(spec.source):
        return spec.source
    return Path(spec.source).stem.replace(" ", "_")


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV or Parquet file into a DataFrame, with one clear error per problem.

    Args:
        path: File path; the suffix picks the format (``.csv``/``.tsv``/``.txt`` or
            ``.parquet``/``.pq``).

    Returns:
        The table, with at least one row and one column.

    Raises:
        DataError: Missing, unreadable, malformed or empty file, or duplicate column names.
    """
    p = Path(path)
    if not p.exists():
        raise DataError(f"data file not found: {p}")
    if not p.is_file():
        raise DataError(f"data path is not a file: {p}")
    suffix = p.suffix.lower()
    if p.stat().st_size == 0:
        raise DataError(f"data file is empty: {p}")
    if suffix in PARQUET_SUFFIXES:
        frame = _read_parquet(p)
    elif suffix in CSV_SUFFIXES:
        frame = _read_csv(p, sep="\t" if suffix == ".tsv" else ",")
    else:
        raise DataError(f"unsupported data file type '{suffix}' for {p}: use .csv or .parquet")
    if frame.shape[1] == 0:
        raise DataError(f"data file has no columns: {p}")
    if len(frame) == 0:
        raise DataError(f"data file has a header but no rows: {p}")
    return frame


def _read_parquet(p: Path) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(p)
    except (pa.ArrowException, OSError) as err:
        raise DataError(f"cannot read {p} as Parquet: {err}") from None
    names = table.column_names
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise DataError(f"duplicate column names in {p}: {', '.join(dupes)}")
    return table.to_pandas()


def _guess_delimiter(header_line: str, default: str) -> str:
    """The file's delimiter: the default unless the header has none of it but another one."""
    if default in header_line:
        return default
    counts = {d: header_line.count(d) for d in (";", "\t", "|", ",") if d != default}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else default


def _read_csv(p: Path, sep: str) -> pd.DataFrame:
    import csv
    import logging

    try:
        with p.open(encoding="utf-8", newline="") as fh:
            first_line = fh.readline()
    except UnicodeDecodeError as err:
        raise DataError(f"{p} is not UTF-8 text (byte {err.start}): re-save it as UTF-8") from None
    if "\x00" in first_line:
        raise DataError(f"{p} is not a text CSV file (binary content)")
    delimiter = _guess_delimiter(first_line, sep)
    if delimiter != sep:
        logging.getLogger("mlpipe.load").warning(
            "%s: header is %r-separated, not %r; reading it that way", p, delimiter, sep
        )
    header = next(csv.reader([first_line], delimiter=delimiter), [])
    names = [h.strip() for h in header]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise DataError(f"duplicate column names in {p}: {', '.join(dupes)}")
    try:
        frame = pd.read_csv(p, sep=delimiter, encoding="utf-8", skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise DataError(f"data file is empty: {p}") from None
    except UnicodeDecodeError as err:
        raise DataError(f"{p} is not UTF-8 text (byte {err.start}): re-save it as UTF-8") from None
    except (pd.errors.ParserError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DataError(f"cannot parse {p} as CSV: {first}") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def load_source(spec: DatasetSpec) -> pd.DataFrame:
    """Load the raw table a dataset spec points at.

    Args:
        spec: Dataset spec whose ``source`` is a built-in name or a file path.

    Returns:
        The raw table.

    Raises:
        DataError: Unknown built-in name or unreadable file.
    """
    if is_builtin(spec.source):
        return BUILTINS[spec.source].loader()
    p = Path(spec.source)
    if p.suffix == "" and not p.exists():
        known = ", ".join(sorted(BUILTINS))
        raise DataError(f"unknown dataset '{spec.source}': built-in datasets are {known}")
    return read_table(p)
