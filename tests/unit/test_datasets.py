from pathlib import Path

import pandas as pd
import pytest

from tasks.core.config import DatasetSpec
from tasks.core.datasets import BUILTINS, dataset_name, load_source, read_table
from tasks.core.errors import DataError


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_builtins_load_offline_with_their_target(name: str):
    frame = load_source(DatasetSpec(source=name))
    assert len(frame) > 100, "built-in sets are real, not toy rows"
    assert BUILTINS[name].target in frame.columns


def test_digits_is_an_8x8_image_set():
    frame = load_source(DatasetSpec(source="digits"))
    assert frame.shape == (1797, 65)
    assert frame.filter(like="pixel_").to_numpy().max() == 16


def test_penguins_has_categoricals_and_missing_values():
    frame = load_source(DatasetSpec(source="penguins"))
    assert {"island", "sex"} <= set(frame.columns)
    assert frame["sex"].isna().sum() > 0 and frame["bill_length_mm"].isna().sum() > 0


def test_unknown_builtin_names_the_choices():
    with pytest.raises(DataError, match=r"unknown dataset 'mnist'.*digits"):
        load_source(DatasetSpec(source="mnist"))


def test_dataset_name_from_path_and_explicit():
    assert dataset_name(DatasetSpec(source="data/My File.csv")) == "My_File"
    assert dataset_name(DatasetSpec(source="x.csv", name="sales")) == "sales"


def test_read_csv_and_parquet_roundtrip(tmp_path: Path):
    frame = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    frame.to_csv(tmp_path / "t.csv", index=False)
    frame.to_parquet(tmp_path / "t.parquet")
    pd.testing.assert_frame_equal(read_table(tmp_path / "t.csv"), frame, check_dtype=False)
    pd.testing.assert_frame_equal(read_table(tmp_path / "t.parquet"), frame, check_dtype=False)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.csv", b"", "empty"),
        ("header.csv", b"a,b,c\n", "no rows"),
        ("latin1.csv", "a,b\nzürich,1\n".encode("latin-1"), "not UTF-8"),
        ("dupes.csv", b"a,b,a\n1,2,3\n", "duplicate column names.*a"),
        ("garbage.csv", b"\x00\x01\x02binary\x00\n\x00", "binary|not UTF-8|cannot parse"),
        ("trunc.parquet", b"PAR1\x00\x00garbage", "cannot read .* as Parquet"),
        ("table.xlsx", b"whatever", "unsupported data file type"),
    ],
)
def test_bad_files_get_one_clear_error(tmp_path: Path, name: str, content: bytes, message: str):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        read_table(path)


def test_missing_file(tmp_path: Path):
    with pytest.raises(DataError, match="not found"):
        read_table(tmp_path / "missing.csv")
