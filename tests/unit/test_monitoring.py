"""Accepted monitoring batches: where they live, keeping them once, windows over them, reading."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pandas as pd
import pytest

from mlpipe.config import WindowConfig, build_config
from mlpipe.data.ingest import Extra, ingest
from mlpipe.errors import DataError
from mlpipe.io.tables import iter_partitions
from mlpipe.monitoring import accept, batch_store, window

DAY = dt.datetime(2026, 11, 20, 12, tzinfo=dt.UTC)


def config(source: str, store: str | None = None):
    return build_config({"dataset": {"source": source}, "schedule": {"batch_store": store}})


def test_the_store_sits_beside_the_source_never_inside_it(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert batch_store(config(str(tmp_path / "a.csv"))) == tmp_path / "a.csv.batches"
    assert batch_store(config("data/shop")) == tmp_path / "data" / "shop.batches"
    assert batch_store(config("data/year=*/*.parquet")) == tmp_path / "data.batches"
    assert batch_store(config("*.parquet")) == tmp_path.parent / f"{tmp_path.name}.batches"
    assert batch_store(config("penguins")) == Path(".mlpipe/batches/penguins")
    assert batch_store(config("a.csv", store="/srv/kept")) == Path("/srv/kept")


def test_a_batch_is_kept_once_as_a_dated_partition(tmp_path: Path):
    frame = pd.DataFrame({"x": [1.0, 2.0], "y": ["a", "b"]})
    kept = accept(frame, tmp_path, "ab" * 32, DAY)
    assert kept == tmp_path / "date=2026-11-20" / f"batch-{'ab' * 8}.parquet"
    pd.testing.assert_frame_equal(pd.read_parquet(kept), frame)
    # The same content on another day: still one copy.
    assert accept(frame, tmp_path, "ab" * 32, DAY + dt.timedelta(days=3)) is None
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == [kept.name]


def test_a_failed_write_leaves_no_partial_batch(tmp_path: Path):
    class Unwritable(pd.DataFrame):
        def to_parquet(self, *args, **kwargs):  # type: ignore[override]
            Path(args[0]).write_bytes(b"half")
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        accept(Unwritable({"x": [1]}), tmp_path, "cd" * 32, DAY)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def kept_batches(store: Path, days_ago: list[int]) -> list[Path]:
    paths = []
    for i, ago in enumerate(days_ago):
        path = accept(pd.DataFrame({"x": [i]}), store, str(i) * 64, DAY - dt.timedelta(days=ago))
        assert path is not None
        os.utime(path, ns=(i * 10**9, i * 10**9))  # acceptance order within one day
        paths.append(path)
    return paths


def test_windows_select_the_last_batches_or_the_recent_days(tmp_path: Path):
    old, older, recent, today = kept_batches(tmp_path, [10, 20, 1, 0])
    every = window(tmp_path, WindowConfig(), DAY.date())
    assert every == [older, old, recent, today], "oldest first"
    assert window(tmp_path, WindowConfig(batches=2), DAY.date()) == [recent, today]
    assert window(tmp_path, WindowConfig(batches=0), DAY.date()) == []
    assert window(tmp_path, WindowConfig(days=2), DAY.date()) == [recent, today]
    assert window(tmp_path, WindowConfig(days=15, batches=1), DAY.date()) == [today]
    assert window(tmp_path / "missing", WindowConfig(), DAY.date()) == []


def test_ingest_appends_batches_with_the_sources_columns(tmp_path: Path):
    source = tmp_path / "data.csv"
    pd.DataFrame({"a": [1.5, 2.5, 3.5], "b": ["x", "y", "z"], "t": [0, 1, 0]}).to_csv(
        source, index=False
    )
    batch = tmp_path / "batch.parquet"
    # Its own column order and an extra column: aligned to the source's columns.
    pd.DataFrame({"t": [1, 1], "b": ["y", "q"], "a": [9.0, 8.0], "extra": [0, 0]}).to_parquet(batch)
    spec = config(str(source)).dataset
    plain = ingest(spec, tmp_path / "plain", "t", 1000)
    both = ingest(spec, tmp_path / "both", "t", 1000, Extra(files=(batch,)))
    assert (plain.rows, both.rows) == (3, 5)
    assert plain.digest != both.digest
    rows = pd.concat(list(iter_partitions(both.path)), ignore_index=True)
    assert list(rows.columns) == ["a", "b", "t"]
    assert rows["b"].tolist() == ["x", "y", "z", "y", "q"]
    only = ingest(spec, tmp_path / "only", "t", 1000, Extra(files=(batch,), reference=False))
    assert only.rows == 2


def test_ingest_refuses_a_batch_without_a_column_and_an_empty_window(tmp_path: Path):
    source = tmp_path / "data.csv"
    pd.DataFrame({"a": [1.5, 2.5], "t": [0, 1]}).to_csv(source, index=False)
    batch = tmp_path / "batch.parquet"
    pd.DataFrame({"a": [9.0]}).to_parquet(batch)
    spec = config(str(source)).dataset
    with pytest.raises(DataError, match=r"batch .*batch.parquet lacks column\(s\) t "):
        ingest(spec, tmp_path / "out", "t", 1000, Extra(files=(batch,)))
    assert not (tmp_path / "out").exists()
    with pytest.raises(DataError, match="the training window holds no rows"):
        ingest(spec, tmp_path / "out", "t", 1000, Extra(reference=False))
