"""The streaming ingest: partition-wise summaries equal the whole frame's, whatever the cuts."""

from __future__ import annotations

import itertools
import shutil
import socket
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlpipe.config import DatasetSpec
from mlpipe.data.ingest import Profile, identifiers_in, ingest, profile_frame
from mlpipe.data.roles import looks_like_identifier, resolve_schema
from mlpipe.errors import DataError
from mlpipe.io.tables import frame_digest, partition_files, read_table


def _frame(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "row_id": np.arange(n),
            "x": rng.normal(size=n),
            "k": rng.integers(-50, 50, n),
            "c": rng.choice(["red", "green", "blue"], n),
            "y": rng.choice(["p", "q", "r"], n),
        }
    )
    frame.loc[frame.index % 17 == 3, "x"] = np.nan
    return frame


def _merged(frame: pd.DataFrame, cuts: list[int], size: int) -> Profile:
    bounds = [0, *sorted(set(cuts)), len(frame)]
    profile = None
    for lo, hi in itertools.pairwise(bounds):
        if hi <= lo:
            continue
        part = Profile.of(frame.iloc[lo:hi].reset_index(drop=True), "y", start=lo, size=size)
        profile = part if profile is None else profile.merge(part)
    assert profile is not None
    return profile


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(30, 400),
    cuts=st.lists(st.integers(1, 399), max_size=6),
    size=st.integers(5, 500),
)
def test_a_profile_merged_from_partitions_equals_the_whole_frames(n, cuts, size):
    frame = _frame(n)
    whole = Profile.of(frame, "y", size=size)
    merged = _merged(frame, [c for c in cuts if c < n], size)
    assert merged.rows == whole.rows == n
    pd.testing.assert_series_equal(
        merged.target_counts.sort_index(), whole.target_counts.sort_index(), check_names=False
    )
    assert merged.abs_max == pytest.approx(whole.abs_max)
    # The same rows are sampled, in file order, however the table was cut.
    pd.testing.assert_frame_equal(merged.sample, whole.sample)
    assert len(merged.sample) == min(n, size)


def test_the_sample_is_spread_over_the_whole_table():
    frame = _frame(50_000)
    sample = Profile.of(frame, "y", size=1000).sample
    assert sample["row_id"].is_monotonic_increasing, "file order is kept"
    assert sample["row_id"].min() < 500 and sample["row_id"].max() > 49_500
    assert abs(sample["row_id"].mean() - 25_000) < 2_000


@pytest.mark.parametrize(
    ("series", "name"),
    [
        (pd.Series(np.arange(100)), "n"),  # sorted integers
        (pd.Series(np.random.default_rng(1).permutation(100) + 7), "n"),  # a shuffled run
        (pd.Series(np.random.default_rng(2).choice(10**6, 100, replace=False)), "user_id"),
        (pd.Series(np.random.default_rng(3).choice(10**6, 100, replace=False)), "income"),
        (pd.Series([f"k{i}" for i in range(100)]), "key"),
        (pd.Series(np.r_[np.arange(60), np.arange(40)]), "id"),  # repeats across partitions
        (pd.Series(np.r_[np.arange(50), np.arange(100, 50, -1)]), "n"),  # not sorted overall
    ],
)
@pytest.mark.parametrize("parts", [1, 3, 7])
def test_identifiers_judged_over_partitions_as_on_the_whole_column(series, name, parts):
    whole = looks_like_identifier(series, name)
    numeric = pd.api.types.is_numeric_dtype(series)
    named = name in ("user_id", "key", "id")
    frame = pd.DataFrame({name: series})
    chunks = np.array_split(np.arange(len(frame)), parts)
    streamed = identifiers_in((frame.iloc[c] for c in chunks), {name: (numeric, named)})
    assert (name in streamed) == whole


def _csv(folder: Path, frame: pd.DataFrame) -> Path:
    path = folder / "data.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("rows", [10_000, 997, 100])
def test_ingest_copies_every_row_and_digests_it_as_the_whole_frame(tmp_path, rows):
    frame = _frame(3000)
    frame.loc[2500, "k"] = np.nan  # integers in early blocks, floats in a late one
    frame["note"] = pd.Series(np.arange(3000).astype(str), dtype="object")
    frame.loc[2999, "note"] = "n/a"  # numbers early, a word in the last block
    path = _csv(tmp_path, frame)
    spec = DatasetSpec(source=str(path), target="y")
    done = ingest(spec, tmp_path / "raw", "y", rows)
    whole = read_table(path)
    assert len(partition_files(done.path)) == -(-3000 // rows)
    back = pd.read_parquet(done.path)
    pd.testing.assert_frame_equal(back, whole, check_dtype=False)
    assert back["k"].dtype == "float64"
    assert done.digest == frame_digest(back)
    assert done.rows == 3000
    assert done.profile.target_counts.sum() == 3000
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no partial folder"


def test_ingest_reads_a_hive_partitioned_directory_and_a_glob(tmp_path):
    frame = _frame(600)
    for year, part in frame.groupby(frame.index % 3):
        folder = tmp_path / "table" / f"year={2020 + year}"
        folder.mkdir(parents=True)
        part.drop(columns=[]).to_parquet(folder / "data.parquet", index=False)
    (tmp_path / "table" / "_SUCCESS").write_text("")
    done = ingest(DatasetSpec(source=str(tmp_path / "table"), target="y"), tmp_path / "a", "y", 250)
    back = pd.read_parquet(done.path)
    assert len(back) == 600 and sorted(back["year"].unique()) == [2020, 2021, 2022]
    assert set(back.columns) == {*frame.columns, "year"}
    glob = str(tmp_path / "table" / "year=202[01]" / "*.parquet")
    done = ingest(DatasetSpec(source=glob, target="y"), tmp_path / "b", "y", 250)
    assert done.rows == 400


def test_a_failed_ingest_leaves_nothing(tmp_path):
    good = _frame(500).to_csv(index=False)
    header = good.splitlines()[0]
    path = tmp_path / "data.csv"
    path.write_text(good + header + "\n" + good.split("\n", 1)[1])
    with pytest.raises(DataError, match="repeat the header"):
        ingest(DatasetSpec(source=str(path), target="y"), tmp_path / "raw", "y", 100)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.csv"]


def test_streamed_schema_equals_the_whole_frames(tmp_path):
    frame = _frame(2000)
    path = _csv(tmp_path, frame)
    spec = DatasetSpec(source=str(path), target="y")
    done = ingest(spec, tmp_path / "raw", "y", 300)
    from mlpipe.data.roles import resolve_profiled
    from mlpipe.io.tables import iter_partitions

    streamed = resolve_profiled(
        done.profile, spec, lambda c: identifiers_in(iter_partitions(done.path, list(c)), c)
    )
    assert streamed == resolve_schema(read_table(path), spec)
    assert streamed.identifiers == ["row_id"]


def test_profile_frame_is_the_one_partition_case():
    frame = _frame(300)
    assert profile_frame(frame, "y").sample.equals(frame)


def _ingest_csv(tmp_path: Path, text: str, rows: int, name: str = "data.csv"):
    path = tmp_path / name
    path.write_text(text)
    return ingest(DatasetSpec(source=str(path), target="y"), tmp_path / f"raw{rows}", "y", rows)


def test_a_file_whose_name_looks_like_a_glob_is_that_file(tmp_path):
    _frame(100).to_parquet(tmp_path / "sales[2].parquet", index=False)
    _frame(50).to_parquet(tmp_path / "sales2.parquet", index=False)
    spec = DatasetSpec(source=str(tmp_path / "sales[2].parquet"), target="y")
    assert ingest(spec, tmp_path / "raw", "y", 1000).rows == 100


def test_a_column_read_as_text_in_some_blocks_is_text_in_all(tmp_path):
    lines = ["zip,flag,y"] + [f"0000{i % 9},{'True' if i % 2 else 'False'},a" for i in range(30)]
    lines += [f"A{i},{i % 3},b" for i in range(30)]
    done = _ingest_csv(tmp_path, "\n".join(lines) + "\n", 20)
    back = pd.read_parquet(done.path)
    whole = read_table(tmp_path / "data.csv")
    assert back["zip"].iloc[0] == "00000" and set(back["flag"]) == {"True", "False", "0", "1", "2"}
    pd.testing.assert_frame_equal(back, whole, check_dtype=False)
    assert done.digest == _ingest_csv(tmp_path, "\n".join(lines) + "\n", 1000).digest


def test_the_digest_does_not_depend_on_where_missing_flags_fall(tmp_path):
    lines = ["flag,y", ",a"] + [f"{'True' if i % 3 else 'False'},{'ab'[i % 2]}" for i in range(60)]
    text = "\n".join(lines) + "\n"
    assert _ingest_csv(tmp_path, text, 10).digest == _ingest_csv(tmp_path, text, 1000).digest


def test_numbers_are_read_one_way_across_blocks(tmp_path):
    thousands = ["amount,y"] + [f'"5,1{i:02d}.70",a' for i in range(30)]
    thousands += [f'"1,{i:03d}",b' for i in range(30)]  # ambiguous alone; thousands before
    done = _ingest_csv(tmp_path, "\n".join(thousands) + "\n", 20, "t.csv")
    assert pd.read_parquet(done.path)["amount"].iloc[-1] == 1029.0
    mixed = (
        ["v;y"] + [f"4.5{i % 10};a" for i in range(30)] + [f"4.961,{i % 10};b" for i in range(30)]
    )
    with pytest.raises(DataError, match="decimal commas in some rows and with a decimal point"):
        _ingest_csv(tmp_path, "\n".join(mixed) + "\n", 20, "m.csv")


def test_parquet_files_that_disagree(tmp_path):
    folder = tmp_path / "d"
    folder.mkdir()
    pd.DataFrame({"x": [1, 2] * 10, "y": ["a", "b"] * 10}).to_parquet(folder / "a.parquet")
    pd.DataFrame({"x": [0.5] * 20, "w": [1] * 20, "y": ["a", "b"] * 10}).to_parquet(
        folder / "b.parquet"
    )
    back = pd.read_parquet(ingest(DatasetSpec(source=str(folder)), tmp_path / "r", "y", 100).path)
    assert back["x"].dtype == "float64" and back["w"].isna().sum() == 20 and len(back) == 40
    pd.DataFrame({"x": ["k"] * 20, "y": ["a"] * 20}).to_parquet(folder / "c.parquet")
    with pytest.raises(
        DataError, match=r"column 'x' is int64 in a.parquet but .*string in c.parquet"
    ):
        ingest(DatasetSpec(source=str(folder)), tmp_path / "r2", "y", 100)


def test_a_file_reached_through_a_link_is_read_once(tmp_path):
    folder = tmp_path / "d" / "2024"
    folder.mkdir(parents=True)
    _frame(40).to_parquet(folder / "a.parquet", index=False)
    (tmp_path / "d" / "latest").symlink_to(folder)
    (folder / "loop").symlink_to(tmp_path / "d")
    for source in (tmp_path / "d", f"{tmp_path}/d/**/*.parquet"):
        assert ingest(DatasetSpec(source=str(source)), tmp_path / "r", "y", 100).rows == 40
        shutil.rmtree(tmp_path / "r")


def test_partitions_are_ordered_by_number_beyond_five_digits(tmp_path):
    for n in (99_999, 100_000, 5):
        (tmp_path / f"part-{n:05d}.parquet").touch()
    assert [p.name for p in partition_files(tmp_path)] == [
        "part-00005.parquet",
        "part-99999.parquet",
        "part-100000.parquet",
    ]


def test_staging_removes_a_killed_process_folder_and_the_folders_it_made(tmp_path):
    from mlpipe.io.runs import OWNER_FILE, staging

    runs = tmp_path / "out" / "deep" / "runs"
    with staging(str(runs)) as folder:
        assert folder.parent == runs
    assert not (tmp_path / "out").exists(), "a refused input leaves no folders"
    runs.mkdir(parents=True)
    dead = runs / ".staging-1-deadbeef"
    dead.mkdir()
    (dead / OWNER_FILE).write_text(f"{socket.gethostname()}:999999999:1")
    other = runs / ".staging-2-cafecafe"
    other.mkdir()
    (other / OWNER_FILE).write_text("another-host:1:1")
    with staging(str(runs)):
        pass
    assert not dead.exists() and other.exists(), "only a dead process of this host is removed"
