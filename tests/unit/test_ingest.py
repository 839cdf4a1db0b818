"""The streaming ingest: partition-wise summaries equal the whole frame's, whatever the cuts."""

from __future__ import annotations

import itertools
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
