"""Built-in datasets (shipped inside installed packages, nothing downloads) and loading a source."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from mlpipe.config import DatasetSpec, ImageSpec, TaskType
from mlpipe.errors import DataError
from mlpipe.io.sources import database_name, is_database, is_remote, iter_database, local_copy
from mlpipe.io.tables import is_dataset, iter_table, read_table


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
    """Short name of a dataset: explicit name, built-in name, or the file stem made safe."""
    if spec.name:
        return spec.name
    if is_builtin(spec.source):
        return spec.source
    stem = Path(spec.source.split("?", 1)[0].rstrip("/")).stem
    if is_database(spec.source):
        stem = (spec.table or "").rpartition(".")[2] or database_name(spec.source)
    stem = re.sub(r"[^\w.\-]+", "_", stem).strip("._-") or "data"
    return re.sub(r"\.{2,}", ".", stem)


def model_name(spec: DatasetSpec, explicit: str | None) -> str:
    """Registered model name: explicit, else ``mlpipe-<dataset name>``."""
    return explicit or f"mlpipe-{dataset_name(spec)}"


def _source_path(spec: DatasetSpec) -> str:
    """The file, directory or glob a spec names.

    Raises:
        DataError: It names no file and no built-in dataset.
    """
    p = Path(spec.source)
    if p.suffix == "" and not p.exists() and not is_dataset(spec.source):
        known = ", ".join(sorted(BUILTINS))
        raise DataError(f"unknown dataset '{spec.source}': built-in datasets are {known}")
    return spec.source


def load_source(spec: DatasetSpec) -> pd.DataFrame:
    """Load the raw table a dataset spec points at, whole.

    Args:
        spec: Dataset spec whose ``source`` is a built-in name, a file path, a URL or a
            database URL.

    Returns:
        The raw table (``dataset.pii`` columns hashed, as :func:`iter_source` gives them).

    Raises:
        DataError: Unknown built-in name or unreadable source.
    """
    from mlpipe.data.privacy import masker

    source = spec.source
    if is_builtin(source) or is_database(source) or is_remote(source) or is_dataset(source):
        return pd.concat(list(iter_source(spec, 1 << 20)), ignore_index=True)
    return masker(spec.pii)(read_table(_source_path(spec), spec.encoding))


def iter_source(
    spec: DatasetSpec, rows: int, text: list[str] | None = None
) -> Iterator[pd.DataFrame]:
    """The source a dataset spec names, in blocks of at most ``rows`` rows.

    A built-in dataset is one block; a database query or table is read through a server-side
    cursor; a file, directory or glob is read in blocks (``text``: CSV columns read as text in
    every block), a remote one from a local copy. Columns named in ``dataset.pii`` come out
    hashed (:func:`mlpipe.data.privacy.mask`), so no stage ever sees their values.

    Raises:
        DataError: Unknown built-in name, or an unreadable source.
    """
    from mlpipe.data.privacy import masker

    mask = masker(spec.pii)
    for block in _raw_blocks(spec, rows, text):
        yield mask(block)


def _raw_blocks(spec: DatasetSpec, rows: int, text: list[str] | None) -> Iterator[pd.DataFrame]:
    if is_builtin(spec.source):
        yield BUILTINS[spec.source].loader()
    elif is_database(spec.source):
        yield from iter_database(spec.source, spec.query, spec.table, rows)
    elif is_remote(spec.source):
        with local_copy(spec.source) as local:
            yield from iter_table(local, rows, spec.encoding, text)
    else:
        yield from iter_table(_source_path(spec), rows, spec.encoding, text)
