"""The one table reader and writer (CSV and Parquet), used by every command.

Reading handles, in one place: the format from the suffix, text encoding (UTF-8 with or without
BOM, UTF-16 with a BOM, Windows-1252 as a named fallback), the delimiter, duplicate and repeated
header rows, decimal commas, nested Parquet columns and index columns. Every problem becomes a
:class:`~mlpipe.errors.DataError` with one line naming the file and the fix.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import functools
import json
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import numpy as np
import pandas as pd

from mlpipe.errors import DataError
from mlpipe.io.processes import running

CSV_SUFFIXES = {".csv": ",", ".tsv": "\t", ".txt": ","}
PARQUET_SUFFIXES = {".parquet", ".pq"}
SUFFIXES = sorted([*CSV_SUFFIXES, *PARQUET_SUFFIXES])
DELIMITERS = (",", ";", "\t", "|")
SNIFF_BYTES = 1 << 16
# A text column is read as numbers written with commas when this share of its values look so.
DECIMAL_COMMA_SHARE = 0.95
# Numbers as a decimal-comma locale writes them ("1.234,5", "0,75", "12"), and as an English
# one writes them with thousands separators ("5,125.70", "1,500,000", "12").
_DECIMAL_COMMA = re.compile(r"^[+-]?(?:\d{1,3}(?:\.\d{3})+|\d+)(?:,\d+)?$")
_THOUSANDS = re.compile(r"^[+-]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?$")
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)

log = logging.getLogger("mlpipe.io")


def table_format(path: str | Path) -> str:
    """``csv`` or ``parquet`` from the file suffix.

    Raises:
        DataError: The suffix is neither.
    """
    suffix = Path(path).suffix.lower()
    if suffix in PARQUET_SUFFIXES:
        return "parquet"
    if suffix in CSV_SUFFIXES:
        return "csv"
    raise DataError(
        f"unsupported file type '{suffix or '(none)'}' for {path}: use {', '.join(SUFFIXES)}"
    )


def check_readable(path: str | Path, what: str = "data file") -> Path:
    """The path of an existing, readable, non-empty file of a supported type.

    Raises:
        DataError: Missing, a directory, unreadable, empty or of an unsupported type.
    """
    p = Path(path)
    if not p.exists():
        raise DataError(f"{what} not found: {p}")
    if not p.is_file():
        raise DataError(f"{what} is not a file: {p}")
    table_format(p)
    if not os.access(p, os.R_OK):
        raise DataError(f"cannot read {what} {p}: permission denied")
    if p.stat().st_size == 0:
        raise DataError(f"{what} is empty: {p}")
    return p


@dataclass(frozen=True)
class Dialect:
    """How a CSV file is read: encoding and delimiter."""

    encoding: str
    delimiter: str


def _detect_encoding(p: Path, encoding: str) -> str:
    stat = p.stat()
    return _detect_encoding_once(p, stat.st_size, stat.st_mtime_ns, encoding)


@functools.lru_cache(maxsize=64)
def _detect_encoding_once(p: Path, size: int, mtime_ns: int, encoding: str) -> str:
    """Detect once per file version: a file read twice is scanned and warned about once."""
    with p.open("rb") as fh:
        head = fh.read(SNIFF_BYTES)
    for bom, name in _BOMS:
        if head.startswith(bom):
            return name
    if b"\x00" in head:
        raise DataError(f"{p} is not a text CSV file (binary content)")
    if encoding != "auto":
        return encoding
    bad = _first_undecodable(p, "utf-8")
    if bad is None:
        return "utf-8"
    if _first_undecodable(p, "cp1252") is None:
        log.warning(
            "%s is not UTF-8 (byte 0x%02x at offset %d): read as Windows-1252 (latin-1); "
            "set dataset.encoding to name the encoding",
            p,
            bad[1],
            bad[0],
        )
        return "cp1252"
    raise DataError(
        f"{p} is not UTF-8 text (byte 0x{bad[1]:02x} at offset {bad[0]}): set "
        "dataset.encoding (--set dataset.encoding=...) or re-save it as UTF-8"
    )


def _first_undecodable(p: Path, encoding: str) -> tuple[int, int] | None:
    """Offset and value of the first byte ``encoding`` cannot decode, streaming the file."""
    decoder = codecs.getincrementaldecoder(encoding)()
    offset = 0
    with p.open("rb") as fh:
        while block := fh.read(1 << 20):
            try:
                decoder.decode(block)
            except UnicodeDecodeError as err:
                return offset + err.start, block[err.start]
            offset += len(block)
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return offset, 0
    return None


def _guess_delimiter(header_line: str, default: str) -> str:
    """The file's delimiter: the default unless the header has none of it but another one."""
    if default in header_line:
        return default
    counts = {d: header_line.count(d) for d in DELIMITERS if d != default}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else default


def sniff_csv(path: str | Path, encoding: str = "auto") -> tuple[Dialect, list[str]]:
    """Encoding, delimiter and header of a CSV file.

    Raises:
        DataError: Binary or undecodable content, no header, duplicate column names.
    """
    p = Path(path)
    enc = _detect_encoding(p, encoding)
    try:
        with p.open(encoding=enc, newline="") as fh:
            first_line = fh.readline()
    except (UnicodeDecodeError, UnicodeError) as err:
        raise DataError(f"{p} cannot be decoded as {enc}: {err}") from None
    if not first_line.strip():
        raise DataError(f"{p} has no header line (the first line is empty)")
    default = CSV_SUFFIXES.get(p.suffix.lower(), ",")
    delimiter = _guess_delimiter(first_line, default)
    if delimiter != default:
        log.info("%s: header is %r-separated; reading it that way", p, delimiter)
    header = next(csv.reader([first_line], delimiter=delimiter), [])
    names = [h.strip() for h in header]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise DataError(f"duplicate column names in {p}: {', '.join(map(repr, dupes))}")
    return Dialect(encoding=enc, delimiter=delimiter), names


def _csv_options(dialect: Dialect) -> dict[str, Any]:
    return {"sep": dialect.delimiter, "encoding": dialect.encoding, "skipinitialspace": True}


@contextlib.contextmanager
def _csv_errors(p: Path, dialect: Dialect) -> Iterator[None]:
    """Turn pandas' CSV errors into one line naming the file."""
    try:
        yield
    except pd.errors.EmptyDataError:
        raise DataError(f"data file is empty: {p}") from None
    except UnicodeError as err:
        raise DataError(f"{p} cannot be decoded as {dialect.encoding}: {err}") from None
    except (pd.errors.ParserError, ValueError) as err:
        text = str(err).strip()
        first = text.splitlines()[0] if text else type(err).__name__
        raise DataError(f"cannot parse {p} as CSV: {first}") from None


def _comma_numbers(frame: pd.DataFrame, comma_file: bool) -> dict[str, str]:
    """Text columns that hold numbers written with commas, and how to read them.

    ``decimal`` (``1.234,5``, ``0,75``), ``thousands`` (``5,125.70``, ``1,500,000``) or
    ``ambiguous``: every comma could be either (``1,500``), which only the delimiter decides
    (a semicolon file writes decimal commas; a comma-separated one may mean either).
    """
    found = {}
    for col in frame.columns:
        series = frame[col]
        if pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
            continue
        present = series.dropna()
        if present.empty or not all(isinstance(v, str) for v in present.head(1000)):
            continue
        text = present.astype("str").str.strip()
        if not text.str.contains(",", regex=False).any():
            continue
        decimal = text.str.match(_DECIMAL_COMMA).mean() >= DECIMAL_COMMA_SHARE
        thousands = text.str.match(_THOUSANDS).mean() >= DECIMAL_COMMA_SHARE
        if decimal and thousands:
            found[str(col)] = "ambiguous" if comma_file else "decimal"
        elif decimal or thousands:
            found[str(col)] = "decimal" if decimal else "thousands"
    return found


def normalise(
    frame: pd.DataFrame,
    p: Path,
    delimiter: str | None = None,
    decided: dict[str, str] | None = None,
) -> pd.DataFrame:
    """Column names as stripped strings, repeated headers refused, decimal commas parsed.

    Args:
        frame: A table (or one chunk of it) as read.
        p: Its file, for messages.
        delimiter: The CSV delimiter. Numbers written with commas are parsed when the
            comma can only be a decimal mark ("1,5") or a thousands separator
            ("5,125.70"); when every one could be either ("1,500"), a semicolon file means
            a decimal comma and a comma-separated file is refused.
        decided: Chunks of one file: how earlier chunks read each column (updated), so that
            every chunk reads a column the same way, and a column written one way in some
            chunks and the other way in others is refused.

    Returns:
        A new frame.

    Raises:
        DataError: A row repeats the header (files concatenated with their headers, in any
            letter case), or comma-written numbers are ambiguous.
    """
    out = frame.copy(deep=False)
    out.columns = [str(c).strip() for c in out.columns]
    names = list(out.columns)
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise DataError(f"duplicate column names in {p}: {', '.join(map(repr, dupes))}")
    text_cols = [c for c in out.columns if not pd.api.types.is_numeric_dtype(out[c])]
    if text_cols and len(out):
        first = text_cols[0]
        # Case-blind: a header row written as "SPECIES,ISLAND" is still a header row.
        repeated = out[first].astype("str").str.strip().str.casefold() == first.casefold()
        for col in out.columns[1:]:
            if not repeated.any():
                break
            repeated &= out[col].astype("str").str.strip().str.casefold() == col.casefold()
        if repeated.any():
            where = out.index[repeated.to_numpy()][0]
            raise DataError(
                f"{p}: {int(repeated.sum())} row(s) repeat the header (first at data row "
                f"{int(where) + 1}): files concatenated with their headers? remove those rows"
            )
    comma = _comma_numbers(out, comma_file=delimiter in (None, ","))
    fresh = set(comma)
    if decided is not None:
        comma, fresh = _consistent(out, comma, decided, p)
    ambiguous = [c for c, kind in comma.items() if kind == "ambiguous"]
    if ambiguous:
        example = next(v for v in out[ambiguous[0]].dropna() if "," in str(v))
        raise DataError(
            f"{p}: {', '.join(ambiguous)} hold numbers like '{str(example).strip()}' in a "
            "comma-separated file: a thousands separator or a decimal comma? write them "
            "without it, or use ';' as the delimiter for decimal commas"
        )
    for col, kind in comma.items():
        text = out[col].astype("str").str.strip()
        if kind == "decimal":
            text = text.str.replace(".", "", regex=False).str.replace(",", ".", regex=False)
        else:
            text = text.str.replace(",", "", regex=False)
        out[col] = pd.to_numeric(text.where(out[col].notna()), errors="coerce")
    for kind in ("decimal", "thousands"):
        columns = [c for c, k in comma.items() if k == kind and c in fresh]
        if columns:
            what = "decimal commas" if kind == "decimal" else "thousands separators"
            log.warning("%s: read numbers with %s in %s", p, what, ", ".join(columns))
    return out


def _consistent(
    frame: pd.DataFrame, comma: dict[str, str], decided: dict[str, str], p: Path
) -> tuple[dict[str, str], set[str]]:
    """This chunk's comma readings made consistent with earlier chunks'; the new ones.

    Raises:
        DataError: A column uses a decimal point in some chunks and decimal commas (where a
            point groups thousands) in others.
    """
    for col in frame.columns:
        series = frame[col]
        if col not in comma and pd.api.types.is_float_dtype(series):
            values = series.dropna().to_numpy()
            if len(values) and not np.all(values == np.round(values)):
                comma[col] = "point"  # "4.56": a decimal point, read by pandas
    fresh = set()
    for col, kind in list(comma.items()):
        before = decided.get(col)
        if before is None:
            decided[col] = kind
            fresh.add(col)
        elif kind == "ambiguous" or kind == before:
            comma[col] = before
        elif "decimal" in (kind, before) and kind != before:
            raise DataError(
                f"{p}: column '{col}' is written with decimal commas in some rows and with "
                "a decimal point in others: write it one way"
            )
        elif before == "ambiguous":
            decided[col] = kind
    return {c: k for c, k in comma.items() if k != "point"}, fresh


def _flatten_nested(table: Any, p: Path, quiet: bool = False) -> Any:
    """Nested Parquet columns (lists, structs, maps) as JSON text: hashable, comparable, named."""
    import pyarrow as pa

    nested = [f.name for f in table.schema if pa.types.is_nested(f.type)]
    for name in nested:
        index = table.schema.get_field_index(name)
        values = [
            None if v is None else json.dumps(v, default=str, sort_keys=True)
            for v in table.column(name).to_pylist()
        ]
        table = table.set_column(index, name, pa.array(values, type=pa.string()))
    if nested and not quiet:
        log.warning("%s: nested columns %s read as JSON text", p, ", ".join(nested))
    return table


def _parquet_to_frame(table: Any, p: Path, quiet: bool = False) -> pd.DataFrame:
    names = table.column_names
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise DataError(f"duplicate column names in {p}: {', '.join(map(repr, dupes))}")
    frame = _flatten_nested(table, p, quiet).to_pandas()
    if not isinstance(frame.index, pd.RangeIndex):
        frame = frame.reset_index()  # a stored index is data (often an id), not row order
    return frame


def read_table(path: str | Path, encoding: str = "auto") -> pd.DataFrame:
    """Read a whole CSV or Parquet file into a DataFrame, with one clear error per problem.

    Args:
        path: File path; the suffix picks the format.
        encoding: Text encoding of a CSV file, or ``auto``.

    Returns:
        The table, with at least one row and one column.

    Raises:
        DataError: Missing, unreadable, malformed or empty file, duplicate or repeated header.
    """
    p = check_readable(path)
    if table_format(p) == "parquet":
        frame = normalise(_parquet_to_frame(_read_parquet_table(p), p), p)
    else:
        dialect, _ = sniff_csv(p, encoding)
        with _csv_errors(p, dialect):
            raw = pd.read_csv(p, low_memory=False, **_csv_options(dialect))
        frame = normalise(raw, p, dialect.delimiter)
    if frame.shape[1] == 0:
        raise DataError(f"data file has no columns: {p}")
    if len(frame) == 0:
        raise DataError(f"data file has a header but no rows: {p}")
    return frame


def _read_parquet_table(p: Path) -> Any:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.read_table(p)
    except (pa.ArrowException, OSError) as err:
        raise DataError(f"cannot read {p} as Parquet: {str(err).splitlines()[0]}") from None


def is_dataset(path: str | Path) -> bool:
    """Whether ``path`` names several Parquet files: a directory, or a glob pattern.

    A path that exists as a file is that file, even if its name holds ``[``, ``?`` or ``*``.
    """
    p = Path(str(path))
    if p.is_file():
        return False
    return p.is_dir() or any(ch in str(path) for ch in "*?[")


def _matches(parts: tuple[str, ...], pattern: tuple[str, ...]) -> bool:
    """Whether path components match glob components (``**``: any number of folders)."""
    import fnmatch

    if not pattern:
        return not parts
    if pattern[0] == "**":
        return any(_matches(parts[i:], pattern[1:]) for i in range(len(parts) + 1))
    return (
        bool(parts)
        and fnmatch.fnmatchcase(parts[0], pattern[0])
        and _matches(parts[1:], pattern[1:])
    )


def _walk(base: Path) -> list[Path]:
    """Every file under ``base``, following folder links once each (no loops)."""
    seen: set[str] = set()
    found: list[Path] = []
    for folder, dirs, names in os.walk(base, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        found.extend(Path(folder) / n for n in names)
    return found


def known_rows(path: str | Path) -> int | None:
    """Rows of a Parquet file or dataset from its metadata (no data read); ``None`` for CSV."""
    import pyarrow.parquet as pq

    try:
        if is_dataset(path):
            files = dataset_files(path)[1]
        elif table_format(path) == "parquet":
            files = [Path(path)]
        else:
            return None
        return sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    except Exception:  # unreadable: the reader says why, with the chunk it failed on
        return None


def dataset_files(path: str | Path) -> tuple[Path, list[Path]]:
    """The base folder and the sorted Parquet files of a directory (recursively) or a glob.

    Hidden files and folders (``.x``, ``_SUCCESS``, ``_metadata``) are skipped, as Spark and
    pyarrow write them beside the data.

    Raises:
        DataError: No Parquet file matches, or a match is not Parquet.
    """
    import glob

    text = str(path)
    explicit = ""  # a glob naming hidden files on purpose ('_part*.parquet') keeps them
    if Path(text).is_dir():
        base = Path(text)
        found = [p for p in _walk(base) if p.is_file()]
    else:
        base = Path(text.split("*")[0].split("?")[0].split("[")[0] or ".")
        base = base if base.is_dir() else base.parent
        if "**" in text:
            # glob.glob follows folder links into loops; walk once and match instead.
            pattern = Path(text).relative_to(base).parts
            found = [p for p in _walk(base) if _matches(p.relative_to(base).parts, pattern)]
        else:
            found = [Path(p) for p in glob.glob(text) if Path(p).is_file()]
        explicit = Path(text).name[:1]
    # A file reached twice (through a folder link) is read once.
    unique: dict[str, Path] = {}
    for p in sorted(found):
        unique.setdefault(os.path.realpath(p), p)
    files = sorted(
        p
        for p in unique.values()
        if not any(
            part.startswith((".", "_")) and not (explicit and part.startswith(explicit))
            for part in p.relative_to(base).parts
        )
    )
    if not files:
        what = "directory" if Path(text).is_dir() else "files match"
        raise DataError(
            f"no Parquet files in {what} {path}: a directory or glob input holds Parquet files"
        )
    others = [p for p in files if p.suffix.lower() not in PARQUET_SUFFIXES]
    if others:
        raise DataError(
            f"{path}: {others[0]} is not a Parquet file; a directory or glob input holds "
            "only Parquet files (hive-style key=value folders allowed)"
        )
    return base, files


def _iter_dataset(path: str | Path, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """Yield the Parquet files of a directory or glob as one table, hive partitions included."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    base, files = dataset_files(path)
    where = Path(str(path))
    names = [str(f) for f in files]
    options = {
        "format": "parquet",
        "partitioning": ds.HivePartitioning.discover(infer_dictionary=False),
        "partition_base_dir": str(base),
    }
    try:
        dataset = ds.dataset(names, **options)
        schema = _unified_schema(dataset.schema, files)
        dataset = ds.dataset(names, schema=schema, **options)
        warned = False
        scan = ds.ParquetFragmentScanOptions(pre_buffer=False)  # see iter_table
        batches = dataset.to_batches(
            batch_size=chunk_rows, use_threads=False, fragment_scan_options=scan
        )
        for batch in batches:
            if batch.num_rows:
                table = pa.Table.from_batches([batch])
                yield normalise(_parquet_to_frame(table, where, quiet=warned), where)
                warned = True
    except (pa.ArrowException, OSError) as err:
        raise DataError(f"cannot read {path} as Parquet: {str(err).splitlines()[0]}") from None


def _unified_schema(first: Any, files: list[Path]) -> Any:
    """One schema for Parquet files that differ: columns of any file, types widened.

    A column missing from some files reads as missing there (with a warning); int and float
    become float. Types that do not widen (numbers in one file, text in another) are refused
    naming the column and two files.

    Raises:
        DataError: Two files give a column types that cannot be one.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    schemas = [pq.read_schema(f) for f in files]

    def unify(parts: list[Any]) -> Any:
        return pa.unify_schemas(parts, promote_options="permissive")

    try:
        unified = unify([first, *schemas])
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        for name in dict.fromkeys(n for s in schemas for n in s.names):
            seen = [
                (f, s.field(name)) for f, s in zip(files, schemas, strict=True) if name in s.names
            ]
            for f, field in seen[1:]:
                try:
                    unify([pa.schema([seen[0][1]]), pa.schema([field])])
                except (pa.ArrowTypeError, pa.ArrowInvalid):
                    raise DataError(
                        f"column '{name}' is {seen[0][1].type} in {seen[0][0].name} but "
                        f"{field.type} in {f.name}: make the files agree on its type"
                    ) from None
        raise
    in_files = {n for s in schemas for n in s.names}  # hive columns are in no file
    absent = {n: sum(n not in s.names for s in schemas) for n in unified.names if n in in_files}
    partial = {n: k for n, k in absent.items() if k}
    if partial:
        shown = ", ".join(f"{n} ({k} of {len(files)} files)" for n, k in sorted(partial.items()))
        log.warning("columns missing from some files read as missing there: %s", shown)
    return unified


def iter_table(
    path: str | Path, chunk_rows: int, encoding: str = "auto", text: list[str] | None = None
) -> Iterator[pd.DataFrame]:
    """Yield a table in chunks of ``chunk_rows`` rows, never loading it whole.

    The table is a CSV or Parquet file, or a directory or glob of Parquet files (hive-style
    ``key=value`` folders become columns). Each chunk is normalised like :func:`read_table`
    does it.

    Args:
        path: The table.
        chunk_rows: Rows per chunk.
        encoding: Text encoding of a CSV file, or ``auto``.
        text: CSV columns to read as text in every chunk (a column whose chunks would read
            as different types, as a whole-file read sees it).

    Raises:
        DataError: As :func:`read_table`, possibly after earlier chunks were yielded.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    if is_dataset(path):
        yield from _iter_dataset(path, chunk_rows)
        return
    p = check_readable(path)
    if table_format(p) == "parquet":
        try:
            # pre_buffer keeps every column chunk it read alive: memory would grow with the file.
            source = pq.ParquetFile(p, pre_buffer=False)
            for i, batch in enumerate(source.iter_batches(batch_size=chunk_rows)):
                table = pa.Table.from_batches([batch])
                yield normalise(_parquet_to_frame(table, p, quiet=i > 0), p)
        except (pa.ArrowException, OSError) as err:
            raise DataError(f"cannot read {p} as Parquet: {str(err).splitlines()[0]}") from None
        return
    dialect, _ = sniff_csv(p, encoding)
    with (
        _csv_errors(p, dialect),
        pd.read_csv(
            p, chunksize=chunk_rows, dtype=dict.fromkeys(text or [], "str"), **_csv_options(dialect)
        ) as reader,
    ):
        decided: dict[str, str] = {}
        for chunk in reader:
            yield normalise(chunk, p, dialect.delimiter, decided)


def conform(frame: pd.DataFrame, like: pd.DataFrame, what: str) -> pd.DataFrame:
    """``frame`` with the columns of ``like``, in its order, and its column types.

    Columns ``like`` lacks are dropped. A column read as text where ``like`` has numbers is
    parsed; one ``like`` reads as text becomes text. Used where rows from elsewhere join a
    table (accepted monitoring batches and the training data).

    Args:
        frame: The rows to conform.
        like: Rows of the table they join (only columns and types are used).
        what: How errors name ``frame``.

    Raises:
        DataError: ``frame`` lacks a column, or holds a value that is not a number where
            ``like`` has numbers.
    """
    from mlpipe.serving.schema import to_numbers

    columns = [str(c) for c in like.columns]
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"{what} lacks column(s) {', '.join(missing)} of the training data")
    out = frame[columns].copy()
    for col in columns:
        want, have = like[col].dtype, out[col].dtype
        if have == want or pd.api.types.is_bool_dtype(want):
            continue
        if pd.api.types.is_numeric_dtype(want):
            numbers = to_numbers(out[col])
            lost = out[col].notna() & numbers.isna()
            if lost.any():
                example = out[col][lost].iloc[0]
                raise DataError(
                    f"{what}: column '{col}' holds {example!r} where the training data has numbers"
                )
            whole = numbers.notna().all() and bool((numbers % 1 == 0).all())
            integer = pd.api.types.is_integer_dtype(want)
            out[col] = numbers.astype(want) if integer and whole else numbers
        elif pd.api.types.is_string_dtype(want):
            out[col] = out[col].astype("str")
    return out


def row_hashes(frame: pd.DataFrame) -> np.ndarray:
    """One 64-bit hash per row over every column (pandas' stable hashing; index excluded)."""
    return pd.util.hash_pandas_object(frame, index=False).to_numpy(dtype=np.uint64)


def _dtypes_json(frame: pd.DataFrame) -> bytes:
    return json.dumps([[str(c), str(t)] for c, t in frame.dtypes.items()]).encode()


def _canonical(frame: pd.DataFrame) -> pd.DataFrame:
    """Booleans as one dtype whether a part has missing values (object) or not (bool).

    Arrow stores both alike; pandas reads them back as ``bool`` or ``object`` depending on the
    rows, which would make the digest depend on how the table was cut.
    """
    flags = [
        c
        for c in frame.columns
        if pd.api.types.is_bool_dtype(frame[c])
        or (frame[c].dtype == object and pd.api.types.infer_dtype(frame[c]) == "boolean")
    ]
    if not flags:
        return frame
    return frame.astype(dict.fromkeys(flags, "boolean"))


class Digest:
    """SHA-256 over every row, the column names and dtypes, fed one partition at a time.

    The value depends on the rows and their order, not on how they were cut into partitions,
    so a streamed table and the same table read whole digest alike. MLflow's own dataset
    digest hashes only the first 10,000 rows; this one covers the whole content.
    """

    def __init__(self) -> None:
        import hashlib

        self._rows = hashlib.sha256()
        self._dtypes: bytes | None = None

    def update(self, frame: pd.DataFrame) -> None:
        """Add the next rows (same columns and dtypes as the first partition)."""
        frame = _canonical(frame)
        if self._dtypes is None:
            self._dtypes = _dtypes_json(frame)
        self._rows.update(row_hashes(frame).tobytes())

    def hexdigest(self) -> str:
        """The digest of every row added so far."""
        import hashlib

        return hashlib.sha256((self._dtypes or b"") + self._rows.digest()).hexdigest()


def frame_digest(frame: pd.DataFrame) -> str:
    """The :class:`Digest` of one whole frame."""
    digest = Digest()
    digest.update(frame)
    return digest.hexdigest()


def head(path: str | Path, rows: int = 1000, encoding: str = "auto") -> pd.DataFrame:
    """The first ``rows`` rows of a table (for schemas and samples).

    Raises:
        DataError: The table is unreadable or has no rows (an empty Parquet file yields no
            chunk at all).
    """
    for chunk in iter_table(path, rows, encoding):
        return chunk
    raise DataError(f"data file has no rows: {path}")


def _partial(target: Path) -> Path:
    """A hidden temporary name beside ``target``, unique to this writer.

    It carries the writer's pid, so partial files left by a killed writer are removed here
    (a live concurrent writer's are kept).
    """
    import uuid

    for stale in target.parent.glob(f".{glob_escape(target.name)}.*.partial"):
        pid = stale.name.removesuffix(".partial").rsplit(".", 1)[-1].split("-")[0]
        if pid.isdigit() and not running(int(pid)):
            stale.unlink(missing_ok=True)
    return target.with_name(f".{target.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.partial")


def glob_escape(name: str) -> str:
    """A file name as a literal glob pattern."""
    import glob

    return glob.escape(name)


@contextlib.contextmanager
def _naming(target: Path) -> Iterator[None]:
    """Let a failed write name the file asked for, not its hidden partial file."""
    try:
        yield
    except OSError as err:
        if err.errno is None or err.filename == str(target):
            raise
        raise type(err)(err.errno, err.strerror, str(target)) from None


def write_parquet(frame: pd.DataFrame, path: str | Path) -> str:
    """Write a frame atomically (temp file + rename), so no half-written file is ever read."""
    target = Path(path)
    with _naming(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = _partial(target)
        try:
            frame.to_parquet(tmp, index=False)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
    return str(target)


def read_parquet(path: str | Path, columns: list[str] | None = None) -> pd.DataFrame:
    """Read a Parquet file written by :func:`write_parquet` (only ``columns``, if given)."""
    return pd.read_parquet(path, columns=columns)


def write_text(text: str, path: str | Path) -> str:
    """Write a text file atomically, creating its folder."""
    target = Path(path)
    with _naming(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = _partial(target)
        try:
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
    return str(target)


class TableWriter:
    """Appends frames to a CSV or Parquet file that appears only on :meth:`commit`.

    Chunks go to a hidden partial file beside the target; :meth:`abort` (or leaving the
    ``with`` block by an exception) removes it, so a failed job leaves nothing half-written.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.format = table_format(self.path)
        with _naming(self.path):
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self.partial = _partial(self.path)
        self.rows = 0
        self._parquet: Any = None
        self._csv: Any = None

    def write(self, frame: pd.DataFrame) -> None:
        """Append one chunk (same columns as the first)."""
        with _naming(self.path):
            if self.format == "csv":
                if self._csv is None:
                    self._csv = self.partial.open("w", encoding="utf-8", newline="")
                    frame.to_csv(self._csv, index=False)
                else:
                    frame.to_csv(self._csv, index=False, header=False)
            else:
                self._write_parquet(frame)
        self.rows += len(frame)

    def _write_parquet(self, frame: pd.DataFrame) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(frame, preserve_index=False)
        if self._parquet is None:
            self._parquet = pq.ParquetWriter(self.partial, table.schema)
        schema = self._parquet.schema
        try:
            table = table.cast(schema)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError):
            changed = [f.name for f in table.schema if f.type != schema.field(f.name).type]
            raise DataError(
                f"columns {', '.join(changed)} change type between chunks "
                f"({', '.join(str(schema.field(c).type) for c in changed)} first): write CSV "
                "output, or use a larger --chunk-rows"
            ) from None
        self._parquet.write_table(table)

    def _close(self) -> None:
        if self._csv is not None:
            self._csv.close()
            self._csv = None
        if self._parquet is not None:
            self._parquet.close()
            self._parquet = None

    def commit(self) -> str:
        """Close the partial file and move it into place; return the target path."""
        self._close()
        if not self.partial.exists():
            raise DataError(f"nothing was written to {self.path}")
        with _naming(self.path):
            os.replace(self.partial, self.path)
        return str(self.path)

    def abort(self) -> None:
        """Close and delete the partial file."""
        self._close()
        self.partial.unlink(missing_ok=True)

    def __enter__(self) -> TableWriter:
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        if exc_type is not None or self.partial.exists():
            self.abort()


PART_PATTERN = "part-*.parquet"


def partition_files(path: str | Path) -> list[Path]:
    """The partitions of a dataset written by :class:`PartitionWriter`, in row order.

    A single Parquet file is its own one partition.
    """
    p = Path(path)
    if not p.is_dir():
        return [p]
    # By number, not text: part-100000 comes after part-99999.
    return sorted(p.glob(PART_PATTERN), key=lambda f: int(f.stem.rsplit("-", 1)[1]))


def row_count(file: str | Path) -> int:
    """Rows of one Parquet file, from its footer (nothing else is read)."""
    import pyarrow.parquet as pq

    return int(pq.ParquetFile(file).metadata.num_rows)


def iter_partitions(
    path: str | Path, columns: list[str] | None = None, progress: str | None = None
) -> Iterator[pd.DataFrame]:
    """Yield a partitioned dataset (or one Parquet file) one partition at a time, in order.

    ``progress`` names the work done with the partitions: long work logs how far it got.
    """
    from mlpipe.io.progress import Progress

    files = partition_files(path)
    done = Progress(progress, len(files)) if progress else None
    for part in files:
        frame = pd.read_parquet(part, columns=columns)
        yield frame
        if done is not None:
            done.step(len(frame))


def write_part(frame: pd.DataFrame, path: str | Path) -> int:
    """Write ``frame`` as one partition file (nothing for no rows); return its rows."""
    import pyarrow.parquet as pq

    if not len(frame):
        return 0
    pq.write_table(_arrow(frame), path)
    return len(frame)


def _unified(types: list[Any]) -> Any:
    """One Arrow type every partition's type of a column converts to without losing values.

    Integers of any width give int64; integers and floats give float64 (a CSV block with a
    missing value reads as floats); anything else mixed gives text (a block with one stray
    word, or booleans in one block and numbers in another, reads as text).
    """
    import pyarrow as pa

    kinds = [t for t in dict.fromkeys(types) if not pa.types.is_null(t)]
    if len(kinds) <= 1:
        return kinds[0] if kinds else types[0]
    if all(pa.types.is_integer(t) for t in kinds):
        return pa.int64()
    if all(pa.types.is_integer(t) or pa.types.is_floating(t) for t in kinds):
        return pa.float64()
    return pa.large_string()


class _DatasetWriter:
    """A partitioned dataset written into a hidden folder beside ``path``, renamed on commit.

    Leaving the ``with`` block by an exception, or without committing, deletes it.
    """

    def __init__(self, path: str | Path):
        import uuid

        self.path = Path(path)
        self.partial = self.path.with_name(
            f".{self.path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.partial"
        )
        with _naming(self.path):
            self.partial.mkdir(parents=True)
        self.rows = 0

    def _close(self) -> None:
        """Finish what is written (subclasses)."""

    def _publish(self) -> str:
        if not self.rows:
            raise DataError(f"no rows to write to {self.path}")
        with _naming(self.path):
            os.replace(self.partial, self.path)
        return str(self.path)

    def abort(self) -> None:
        """Delete everything written."""
        import shutil

        self._close()
        shutil.rmtree(self.partial, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        if exc_type is not None or self.partial.exists():
            self.abort()


class PartitionWriter(_DatasetWriter):
    """Writes a partitioned Parquet dataset that appears, whole, only on :meth:`commit`.

    Frames of any size go in; partitions of ``rows`` rows (the last one smaller) come out as
    ``part-00000.parquet``, ... in a hidden folder beside the target, renamed into place on
    commit. A column whose type changed between partitions (a CSV block with a missing value
    or a stray word) is converted to one type for all of them. With ``digest=True`` the
    :class:`Digest` of the written rows is computed as they stream through (the ingest's
    lineage digest; the stages' own outputs skip it: hashing every row costs as much as
    writing it).

    Args:
        path: The dataset folder to create (must not exist).
        rows: Rows per partition; ``None``: each frame written is one partition (a stage that
            maps partitions one to one).
        digest: Compute :attr:`digest` over the written rows.
    """

    def __init__(self, path: str | Path, rows: int | None = None, digest: bool = False):
        super().__init__(path)
        self.rows_per_part = rows or 0
        self.parts = 0
        self.digest: Digest | None = Digest() if digest else None
        self.as_text: list[str] = []  # columns read as other types in some parts, made text
        self._buffer: list[pd.DataFrame] = []
        self._buffered = 0

    def write(self, frame: pd.DataFrame) -> None:
        """Append rows (same columns as the first frame)."""
        if not len(frame):
            return
        if not self.rows_per_part:
            self._write_part(frame.reset_index(drop=True))
            return
        self._buffer.append(frame)
        self._buffered += len(frame)
        while self._buffered >= self.rows_per_part:
            self._flush(self.rows_per_part)

    def _flush(self, rows: int) -> None:
        whole = (
            pd.concat(self._buffer, ignore_index=True) if len(self._buffer) > 1 else self._buffer[0]
        )
        part, rest = whole.iloc[:rows].reset_index(drop=True), whole.iloc[rows:]
        self._buffer = [rest] if len(rest) else []
        self._buffered = len(rest)
        self._write_part(part)

    def _write_part(self, frame: pd.DataFrame) -> None:
        with _naming(self.path):
            write_part(frame, self._next())
        if self.digest is not None:
            self.digest.update(frame)
        self.rows += len(frame)

    def reserve(self) -> Path:
        """The path of the next partition, for a writer elsewhere (a worker process).

        The partition counts once it is there: see :meth:`adopt`.
        """
        if self.digest is not None or self.rows_per_part:
            raise ValueError("only a one-to-one writer without a digest hands out partitions")
        return self._next()

    def _next(self) -> Path:
        path = self.partial / f"part-{self.parts:05d}.parquet"
        self.parts += 1
        return path

    def adopt(self, rows: int) -> None:
        """Count ``rows`` written by someone else into a :meth:`reserve`-d partition."""
        self.rows += rows

    def _unify(self) -> bool:
        """Convert partitions whose column types differ; whether any was rewritten."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        files = partition_files(self.partial)
        schemas = [pq.read_schema(f) for f in files]
        names = schemas[0].names
        target = pa.schema([(n, _unified([s.field(n).type for s in schemas])) for n in names])
        changed = [f for f, s in zip(files, schemas, strict=True) if not s.equals(target)]

        def text(t: Any) -> bool:
            return bool(pa.types.is_string(t) or pa.types.is_large_string(t))

        self.as_text = [
            n
            for n in names
            if text(target.field(n).type)
            and any(
                not text(t) and not pa.types.is_null(t) for t in (s.field(n).type for s in schemas)
            )
        ]
        for f in changed:
            table = pq.read_table(f)
            try:
                table = table.cast(target)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
                raise DataError(
                    f"{self.path.name}: a column changes type between blocks and cannot be "
                    f"read as one type ({str(err).splitlines()[0]})"
                ) from None
            pq.write_table(table, f)
        return bool(changed)

    def commit(self) -> str:
        """Write the last partition, unify column types, move the dataset into place.

        Raises:
            DataError: No rows were written, or a column's types cannot be unified.
        """
        if self._buffered:
            self._flush(self._buffered)
        if self.rows and self._unify() and self.digest is not None:
            # Types changed under rows already digested: digest the converted rows.
            self.digest = Digest()
            for frame in iter_partitions(self.partial):
                self.digest.update(frame)
        return self._publish()

    def _close(self) -> None:
        self._buffer = []


def _arrow(frame: pd.DataFrame) -> Any:
    import pyarrow as pa

    # No pandas metadata: partitions must read back alike whatever dtype a block had.
    return pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(None)


def _by_bucket(table: Any, bucket: np.ndarray, buckets: int) -> Iterator[tuple[int, Any]]:
    """``(bucket, Arrow rows)`` for each non-empty bucket, rows in their order."""
    order = np.argsort(bucket, kind="stable")  # rows keep their order within a bucket
    starts = np.searchsorted(bucket[order], np.arange(buckets + 1))
    for b in range(buckets):
        lo, hi = starts[b], starts[b + 1]
        if hi > lo:
            yield b, table.take(order[lo:hi])


class BucketWriter(_DatasetWriter):
    """Writes rows into ``buckets`` partitions by a bucket number per row; see PartitionWriter.

    Each bucket is one Parquet file (``part-00000.parquet``, ...) that grows by a row group
    per :meth:`write`, so memory holds one frame whatever the number of buckets. Used to
    scatter rows over partitions by hash: each partition is then a uniform sample of all
    rows, whatever order the source was sorted in. Written in this process; see
    :class:`PieceBucketWriter` for rows written by several processes.
    """

    def __init__(self, path: str | Path, buckets: int):
        super().__init__(path)
        self.buckets = buckets
        self._writers: dict[int, Any] = {}
        self._schema: Any = None

    def write(self, frame: pd.DataFrame, bucket: np.ndarray) -> None:
        """Append each row of ``frame`` to the bucket ``bucket`` names (0 .. buckets - 1)."""
        import pyarrow.parquet as pq

        if not len(frame):
            return
        table = _arrow(frame)
        if self._schema is None:
            self._schema = table.schema
        with _naming(self.path):
            for b, rows in _by_bucket(table.cast(self._schema), bucket, self.buckets):
                if b not in self._writers:
                    target = self.partial / f"part-{b:05d}.parquet"
                    self._writers[b] = pq.ParquetWriter(target, self._schema)
                self._writers[b].write_table(rows)
        self.rows += len(frame)

    def reserve(self) -> BucketWriter:
        """Where one input partition's rows go: this writer itself (same process only)."""
        return self

    def adopt(self, rows: int) -> None:
        """Nothing to count: :meth:`write` counted the rows."""

    def _close(self) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers = {}

    def commit(self) -> str:
        """Close every bucket and move the dataset into place.

        Raises:
            DataError: No rows were written.
        """
        self._close()
        return self._publish()


@dataclass(frozen=True)
class Pieces:
    """Where a worker writes one input partition's rows, one file per bucket."""

    folder: Path
    buckets: int


def write_pieces(frame: pd.DataFrame, bucket: np.ndarray, pieces: Pieces) -> int:
    """Write ``frame``'s rows into ``pieces.folder/part-<bucket>.parquet``; return the rows."""
    import pyarrow.parquet as pq

    if not len(frame):
        return 0
    pieces.folder.mkdir(parents=True, exist_ok=True)
    for b, rows in _by_bucket(_arrow(frame), bucket, pieces.buckets):
        pq.write_table(rows, pieces.folder / f"part-{b:05d}.parquet")
    return len(frame)


def gather_bucket(bucket: int, root: Path, inputs: int, target: Path) -> int:
    """Join bucket ``bucket``'s pieces of every input partition, in order, into ``target``."""
    import pyarrow.parquet as pq

    writer, rows = None, 0
    try:
        for i in range(inputs):
            piece = root / f"{i:05d}" / f"part-{bucket:05d}.parquet"
            if not piece.exists():
                continue
            table = pq.read_table(piece)
            if writer is None:
                writer = pq.ParquetWriter(target, table.schema)
            writer.write_table(table.cast(writer.schema))  # a row group per input, as above
            rows += table.num_rows
    finally:
        if writer is not None:
            writer.close()
    return rows


class PieceBucketWriter(_DatasetWriter):
    """A :class:`BucketWriter` for rows written by worker processes.

    Each input partition's rows land in pieces, one small file per bucket; :meth:`commit`
    joins each bucket's pieces in input order into ``part-<bucket>.parquet`` (a task per
    bucket on ``engine``), so the dataset equals what :class:`BucketWriter` writes.
    """

    def __init__(self, path: str | Path, buckets: int, engine: Any):
        super().__init__(path)
        self.buckets, self.engine, self.inputs = buckets, engine, 0
        self.root = self.partial / ".pieces"

    def reserve(self) -> Pieces:
        """Where the next input partition's rows go."""
        self.inputs += 1
        return Pieces(self.root / f"{self.inputs - 1:05d}", self.buckets)

    def adopt(self, rows: int) -> None:
        """Count ``rows`` written into reserved pieces."""
        self.rows += rows

    def commit(self) -> str:
        """Join the pieces into one partition per bucket; move the dataset into place."""
        import shutil

        targets = [self.partial / f"part-{b:05d}.parquet" for b in range(self.buckets)]
        jobs = list(zip(range(self.buckets), targets, strict=True))
        for _ in self.engine.map(_gather_job, jobs, self.root, self.inputs):
            pass
        shutil.rmtree(self.root, ignore_errors=True)
        return self._publish()


def _gather_job(job: tuple[int, Path], root: Path, inputs: int) -> int:
    return gather_bucket(job[0], root, inputs, job[1])


def put(out: Any, target: Any) -> int:
    """Write one stage output where a writer's :meth:`reserve` said; return its rows.

    ``target``: a partition file (``out`` a frame), :class:`Pieces` or an in-process
    :class:`BucketWriter` (``out`` a ``(frame, buckets)`` pair).
    """
    if isinstance(target, Pieces):
        return write_pieces(out[0], out[1], target)
    if isinstance(target, BucketWriter):
        before = target.rows
        target.write(out[0], out[1])
        return target.rows - before
    return write_part(out, target)
