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
    assert window(tmp_path, WindowConfig(batches=9), DAY.date()) == every, "more than there are"
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


def test_conform_gives_a_batch_the_training_datas_columns_and_types():
    from mlpipe.io.tables import conform

    like = pd.DataFrame({"x": [1.5], "k": [3], "cat": ["a"], "y": [0]}).head(0)
    batch = pd.DataFrame({"y": [1, 0], "extra": [9, 9], "cat": [1, 2], "k": [5.0, 6.0],
                          "x": ["0.25", " 7 "]})  # fmt: skip
    out = conform(batch, like, "the batch")
    assert list(out.columns) == ["x", "k", "cat", "y"]
    assert out["x"].tolist() == [0.25, 7.0] and out["x"].dtype == "float64"
    assert out["k"].tolist() == [5, 6] and out["k"].dtype == "int64"
    assert out["cat"].tolist() == ["1", "2"]
    with pytest.raises(DataError, match=r"the batch: column 'y' holds 'yes' where the training"):
        conform(batch.assign(y=["yes", "no"]), like, "the batch")
    with pytest.raises(DataError, match=r"column 'x' holds '\"0.189\"'"):
        conform(batch.assign(x=['"0.189"', "1"]), like, "the batch")
    with pytest.raises(DataError, match=r"the batch lacks column\(s\) k of the training data"):
        conform(batch.drop(columns="k"), like, "the batch")


def test_the_same_rows_in_another_shape_are_kept_once_and_bad_types_never(tmp_path: Path):
    from mlpipe.monitoring import keep_batch

    source = tmp_path / "ref.csv"
    pd.DataFrame({"x": [0.5, 1.5, 2.5], "k": [1, 2, 3], "y": [0, 1, 0]}).to_csv(source, index=False)
    cfg = config(str(source))
    rows = pd.DataFrame({"x": [3.5, 4.5], "k": [4, 5], "y": [1, 1]})
    assert keep_batch(cfg, rows, "y").startswith("kept 2 rows in ")
    for same in (rows[["y", "k", "x"]], rows.assign(note="hi"), rows.assign(k=[4.0, 5.0])):
        assert keep_batch(cfg, same, "y").startswith("already kept"), same
    bad = keep_batch(cfg, rows.assign(y=["yes", "no"]), "y")
    assert bad == (
        "not kept for training: the batch: column 'y' holds 'yes' where the training data has "
        "numbers"
    )
    assert keep_batch(cfg, rows.drop(columns="y"), "y").startswith("not kept for training: no 'y'")
    kept = list(batch_store(cfg).rglob("*.parquet"))
    assert len(kept) == 1
    assert list(pd.read_parquet(kept[0]).columns) == ["x", "k", "y"]


def test_a_window_without_the_reference_takes_its_columns_from_the_reference(tmp_path: Path):
    source = tmp_path / "ref.csv"
    pd.DataFrame({"a": [1.5, 2.5], "t": [0, 1]}).to_csv(source, index=False)
    spec = config(str(source)).dataset
    # The oldest batch has a column the training data lacks: it never becomes a feature.
    old = tmp_path / "old.parquet"
    pd.DataFrame({"a": [3.0], "t": [1], "extra": ["x"]}).to_parquet(old)
    new = tmp_path / "new.parquet"
    pd.DataFrame({"t": [0], "a": ["4.5"]}).to_parquet(new)
    only = ingest(spec, tmp_path / "o", "t", 1000, Extra(files=(old, new), reference=False))
    rows = pd.concat(list(iter_partitions(only.path)), ignore_index=True)
    assert rows.to_dict("list") == {"a": [3.0, 4.5], "t": [1, 0]}
    # A kept file that cannot join the training data is named, with what to do.
    broken = tmp_path / "broken.parquet"
    pd.DataFrame({"a": ["n/a?"], "t": [1]}).to_parquet(broken)
    with pytest.raises(DataError, match=r"accepted batch .*broken.parquet: column 'a' holds "
                       r"'n/a\?' .*remove it from the batch store"):  # fmt: skip
        ingest(spec, tmp_path / "b", "t", 1000, Extra(files=(broken,)))
