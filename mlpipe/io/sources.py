"""Sources that are not local files: a database table or query, and remote files (fsspec URLs).

A database is read in blocks through a server-side cursor (SQLAlchemy ``stream_results``), so
memory holds one block whatever the result's size. A remote file is copied once, in blocks,
into a local temporary folder and read there by the same streaming reader as a local file
(CSV sniffing, decimal commas, Parquet row groups), then deleted.

Credentials never enter a config (configs are logged and sent to Prefect): a database URL
takes its password from ``MLPIPE_DATA_PASSWORD`` (any dialect) or the driver's own variable
(``PGPASSWORD`` for PostgreSQL); a remote filesystem takes its own (``AWS_*`` for S3, ...).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from mlpipe.errors import DataError
from mlpipe.secrets import redact

PASSWORD_ENV = "MLPIPE_DATA_PASSWORD"
# SQLAlchemy dialects, optionally with a driver ("postgresql+psycopg2://").
_DATABASE = re.compile(r"^(postgresql|postgres|sqlite|mysql|mariadb|mssql|oracle)(\+[\w]+)?://")
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")
_GLOB_CHARS = set("*?[")
COPY_BLOCK = 1 << 20  # bytes per read when copying a remote file


def is_database(source: str) -> bool:
    """Whether ``source`` is a database URL (``postgresql://``, ``sqlite:///``, ...)."""
    return bool(_DATABASE.match(source))


def is_remote(source: str) -> bool:
    """Whether ``source`` is a URL of a file that is not a local path (``https://``, ``s3://``).

    ``file://`` URLs count as remote here too: they are read through fsspec like the others.
    """
    return bool(_URL.match(source)) and not is_database(source)


def display_url(url: str) -> str:
    """The URL as it may be shown and stored: no password, whatever its form."""
    return redact(url)


# scheme://user:password@rest, the password running to the LAST "@" (users paste passwords
# with an unescaped "@"; SQLAlchemy would cut at the first one and keep the rest as the user).
_CREDENTIALS = re.compile(
    r"^(?P<head>[^:/]+://)(?P<user>[^:/@]*):(?P<password>.*)@(?P<rest>[^@]*)$"
)


def split_password(url: str) -> tuple[str, str | None]:
    """A database URL without its password, and the password (``None``: it had none).

    The command line accepts ``--data postgresql://user:secret@host/db``; the password goes
    to the environment of this process (:data:`PASSWORD_ENV`) and never into the config. A
    percent-encoded password is decoded; an unescaped "@" or "/" in it is kept.
    """
    from urllib.parse import unquote

    match = _CREDENTIALS.match(url)
    if match is None:
        return url, None
    user = f"{match['user']}@" if match["user"] else ""
    return f"{match['head']}{user}{match['rest']}", unquote(match["password"])


def _dialect(url: str) -> str:
    # SQLAlchemy 2 knows "postgresql", not the "postgres" scheme many services hand out.
    return re.sub(r"^postgres(?=(\+\w+)?://)", "postgresql", url)


def database_name(url: str) -> str:
    """The database (or SQLite file stem) a URL names, for a default dataset name."""
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(_dialect(url))
    except Exception:
        return "database"
    name = parsed.database or "database"
    return Path(name).stem if parsed.get_backend_name() == "sqlite" else name


def _engine(url: str) -> Any:
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import NullPool

    parsed = make_url(_dialect(url))
    secret = os.environ.get(PASSWORD_ENV)
    if secret and parsed.password is None:
        parsed = parsed.set(password=secret)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        # Read-only: a query can change nothing, and a mistyped path creates no empty file.
        parsed = parsed.set(database=f"file:{parsed.database}?mode=ro", query={"uri": "true"})
    connect: dict[str, Any] = {}
    if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() == "psycopg2":
        # Read-only for the whole session, beside the read-only transaction of each read.
        connect["options"] = "-c default_transaction_read_only=on"
    # NullPool: the connection closes with the read; nothing lingers in a long-lived process.
    return create_engine(parsed, poolclass=NullPool, connect_args=connect)


_COMMENTS = re.compile(r"(--[^\n]*\n?|/\*.*?\*/|\s+)", re.DOTALL)
_READING = ("select", "with", "values", "table", "(")
# What SQL text is made of, for finding a ";" that ends a statement: quoted strings (with ''
# inside), quoted names, dollar-quoted bodies ($$...$$, $tag$...$tag$), comments, and the rest.
_SQL_TOKEN = re.compile(
    r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|(\$\w*\$).*?\1|--[^\n]*|/\*.*?\*/|;|[^'\"$;/-]+|.",
    re.DOTALL,
)


def _statements(query: str) -> list[str]:
    """The statements of ``query``, split at each ";" outside strings and comments."""
    parts: list[str] = []
    current: list[str] = []
    for match in _SQL_TOKEN.finditer(query):
        if match.group(0) == ";":
            parts.append("".join(current))
            current = []
        else:
            current.append(match.group(0))
    parts.append("".join(current))
    return [p for p in parts if _COMMENTS.sub(" ", p).strip()]


def check_query(query: str) -> str:
    """The query, if it is one statement that only reads (SELECT, WITH, VALUES or TABLE).

    Raises:
        DataError: More than one statement (a ``COMMIT`` between them would end the read-only
            transaction), or anything else than a read (``DROP``, ``DELETE``, ``CALL``, ...):
            ``dataset.query`` is the data to train on, never a change to the database.
    """
    statements = _statements(query)
    if len(statements) > 1:
        raise DataError(
            f"dataset.query holds {len(statements)} statements: give one SELECT (a trailing "
            "';' is fine)"
        )
    start = _COMMENTS.sub(" ", statements[0] if statements else "").strip().lower()
    if not start.startswith(_READING):
        word = (start.split() or ["(empty)"])[0]
        raise DataError(
            f"dataset.query must read data (SELECT, WITH, VALUES or TABLE), not {word.upper()}"
        )
    return statements[0]


def _statement(query: str | None, table: str | None) -> Any:
    from sqlalchemy import literal_column, select, text
    from sqlalchemy import table as table_clause

    if query:
        # A colon is SQL here (':: casts', "'a :b'"), never a bind parameter.
        return text(re.sub(r"(?<![:\\]):(?!:)", r"\\:", check_query(query)))
    assert table
    schema, _, name = table.rpartition(".")
    return select(literal_column("*")).select_from(table_clause(name, schema=schema or None))


def _text_of(value: Any) -> Any:
    """A driver's Python object as stable text: bytes as hex, JSON and arrays as JSON."""
    import json

    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


def _plain(frame: pd.DataFrame) -> pd.DataFrame:
    """A block with stable, storable types.

    Python objects a driver returns (UUIDs, JSON, arrays, bytes) become text that is the same
    on every read (a ``memoryview``'s repr holds its address); durations (intervals) become
    seconds.
    """
    out = frame.copy(deep=False)
    for col in frame.columns:
        series = frame[col]
        if pd.api.types.is_timedelta64_dtype(series.dtype):
            out[col] = series.dt.total_seconds()
        elif series.dtype == object:
            values = series.dropna()
            if len(values) and not all(isinstance(v, str) for v in values):
                out[col] = series.map(_text_of)
    return out


def iter_database(
    url: str, query: str | None, table: str | None, rows: int
) -> Iterator[pd.DataFrame]:
    """A query's (or a table's) rows in blocks of at most ``rows``, through a server-side cursor.

    Raises:
        DataError: The database cannot be reached, the query fails or returns no columns;
            the message holds the redacted URL and the driver's first line, no password.
    """
    from sqlalchemy.exc import DBAPIError, SQLAlchemyError

    where = display_url(url)
    what = f"table {table}" if table else "the query"
    statement = _statement(query, table)
    engine = _engine(url)
    try:
        with engine.connect() as conn:
            options: dict[str, Any] = {"stream_results": True, "max_row_buffer": rows}
            if engine.dialect.name == "postgresql":
                options["postgresql_readonly"] = True  # a query can change nothing
            streaming = conn.execution_options(**options)
            reader = pd.read_sql(statement, streaming, chunksize=rows)
            empty = True
            for block in reader:
                empty = False
                block.columns = [str(c) for c in block.columns]
                names = list(block.columns)
                dupes = sorted({n for n in names if names.count(n) > 1})
                if dupes:
                    raise DataError(
                        f"{what} on {where} returns duplicate column names: "
                        f"{', '.join(dupes)} (name them apart with AS)"
                    )
                yield _plain(block)
            if empty:
                raise DataError(f"{what} on {where} returned no rows")
    except (SQLAlchemyError, pd.errors.DatabaseError) as err:
        # pandas wraps the driver's error; the driver's first line says what is wrong.
        cause: BaseException = err.__cause__ or err
        if isinstance(cause, DBAPIError) and cause.orig is not None:
            cause = cause.orig
        first = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
        doing = f"cannot read table {table} from" if table else "dataset.query failed on"
        raise DataError(f"{doing} {where}: {redact(first)}") from None
    finally:
        engine.dispose()


HTTP_STALL_SECONDS = 120  # a web server silent this long fails the read (never hangs)


def _filesystem(url: str) -> tuple[Any, str]:
    import fsspec

    options: dict[str, Any] = {}
    if url.lower().startswith(("http://", "https://")):
        import aiohttp

        timeout = aiohttp.ClientTimeout(sock_connect=30, sock_read=HTTP_STALL_SECONDS)
        options["client_kwargs"] = {"timeout": timeout}
    try:
        return fsspec.core.url_to_fs(url, **options)
    except (ImportError, ValueError) as err:
        # An unknown protocol, or one whose package is not installed (s3fs, gcsfs, ...).
        raise DataError(f"cannot open {display_url(url)}: {err}") from None


def remote_files(url: str) -> tuple[Any, str, list[str], bool]:
    """The filesystem, base path and files a remote source names, and whether it is one file.

    Raises:
        DataError: Nothing is there, or the filesystem cannot be opened.
    """
    fs, path = _filesystem(url)
    single = False
    protocols = {fs.protocol} if isinstance(fs.protocol, str) else set(fs.protocol)
    try:
        if protocols & {"http", "https"}:
            # A web server lists no folders (and asking would download the file): one file.
            files, base, single = [path], path.rsplit("/", 1)[0], True
        elif _GLOB_CHARS & set(path):
            files = sorted(fs.glob(path))
            base = path[: min(path.index(c) for c in _GLOB_CHARS if c in path)]
            base = base.rsplit("/", 1)[0]
        elif fs.isdir(path):
            files = sorted(f for f in fs.find(path) if not Path(f).name.startswith((".", "_")))
            base = path
        else:
            files, base, single = [path], path.rsplit("/", 1)[0], True
    except FileNotFoundError:
        files = []
    except OSError as err:
        raise DataError(f"cannot read {display_url(url)}: {redact(str(err))}") from None
    if not files:
        raise DataError(f"data not found: {display_url(url)}")
    return fs, base, files, single


@contextlib.contextmanager
def local_copy(url: str) -> Iterator[Path]:
    """A local copy of a remote file (or of the files of a remote folder or glob).

    Copied in blocks (bounded memory) into a temporary folder that is deleted on exit; the
    copy keeps the file names and sub-folders (hive partitions), so the local reader sees the
    same table. Yields the file, or the folder holding the files.

    Raises:
        DataError: Nothing to read there, or a read fails (one line, URL redacted).
    """
    fs, base, files, single = remote_files(url)
    folder = Path(tempfile.mkdtemp(prefix="mlpipe-remote-"))
    try:
        for name in files:
            rel = name[len(base) :].lstrip("/") if name.startswith(base) else Path(name).name
            # A signed URL's query string is not part of the file's name.
            rel = rel.split("?", 1)[0] or "data"
            target = folder / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                with fs.open(name, "rb", block_size=COPY_BLOCK) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst, COPY_BLOCK)
            except FileNotFoundError:
                raise DataError(f"data not found: {display_url(url)}") from None
            except OSError as err:
                raise DataError(f"cannot read {display_url(url)}: {redact(str(err))}") from None
            if single and not target.suffix:
                # An export endpoint or a redirect names no type: Parquet has a magic number.
                with open(target, "rb") as f:
                    kind = ".parquet" if f.read(4) == b"PAR1" else ".csv"
                target = target.rename(target.with_name(target.name + kind))
        yield target if single else folder
    except DataError as err:
        # The reader names the local copy: name the URL instead.
        local = str(target) if single else str(folder)
        raise DataError(str(err).replace(local, display_url(url))) from None
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def upload(local: str | Path, url: str) -> None:
    """Copy a local file to a remote URL.

    Raises:
        DataError: The filesystem refuses the write.
    """
    fs, path = _filesystem(url)
    try:
        fs.put_file(str(local), path)
    except (OSError, NotImplementedError) as err:
        raise DataError(f"cannot write {display_url(url)}: {redact(str(err))}") from None


@contextlib.contextmanager
def readable(source: str) -> Iterator[str]:
    """A local path to read ``source`` from: itself, or a local copy of a remote file."""
    if not is_remote(source):
        yield source
        return
    with local_copy(source) as local:
        yield str(local)


def check_writable_url(target: str) -> None:
    """Refuse an output URL no filesystem can write (a web server's), before any work.

    Raises:
        DataError: The protocol is read-only or cannot be opened.
    """
    fs, path = _filesystem(target)
    protocols = {fs.protocol} if isinstance(fs.protocol, str) else set(fs.protocol)
    if protocols & {"http", "https"}:
        raise DataError(
            f"cannot write {display_url(target)}: http(s) URLs are read-only; write to a file "
            "or to a writable URL (s3://, gs://, file://, ...)"
        )
    try:
        # As for a local output, its folder is made (a no-op on object stores).
        fs.makedirs(path.rstrip("/").rpartition("/")[0], exist_ok=True)
    except OSError as err:
        raise DataError(f"cannot write {display_url(target)}: {redact(str(err))}") from None


@contextlib.contextmanager
def writable(target: str) -> Iterator[str]:
    """A local path to write ``target`` to: itself, or a scratch file uploaded on success.

    For a remote target, every file written beside the scratch file (the quarantine) is
    uploaded beside the target too, the target last; nothing is uploaded when the body
    fails, and the scratch folder is always deleted.
    """
    if not is_remote(target):
        yield target
        return
    folder = Path(tempfile.mkdtemp(prefix="mlpipe-upload-"))
    base, _, name = target.rstrip("/").rpartition("/")
    try:
        local = folder / name
        yield str(local)
        for path in sorted(folder.iterdir(), key=lambda p: p == local):
            upload(path, f"{base}/{path.name}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def beside(target: str, written: str) -> str:
    """Where a file written beside the local copy of ``target`` ends up (see :func:`writable`)."""
    if not is_remote(target):
        return written
    return f"{target.rstrip('/').rpartition('/')[0]}/{Path(written).name}"
