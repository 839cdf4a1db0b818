from pathlib import Path

import pandas as pd
import pytest

from mlpipe.config import DatasetSpec
from mlpipe.data.datasets import BUILTINS, dataset_name, load_source
from mlpipe.errors import DataError
from mlpipe.io.tables import read_table


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
        ("dupes.csv", b"a,b,a\n1,2,3\n", "duplicate column names.*a"),
        ("garbage.csv", b"\x00\x01\x02binary\x00\n\x00", "binary|not UTF-8|cannot parse"),
        ("trunc.parquet", b"PAR1\x00\x00garbage", "cannot read .* as Parquet"),
        ("table.xlsx", b"whatever", "unsupported file type"),
        ("repeated.csv", b"a,b\n1,x\n2,y\na,b\n3,z\n", "repeat the header"),
        ("noheader.csv", b"\n1,2\n", "no header line"),
        ("ragged.csv", b"a,b\n1,2\n3,4,5,6\n", "cannot parse"),
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


def test_unreadable_file_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import os

    path = tmp_path / "secret.csv"
    path.write_text("a,b\n1,2\n")
    path.chmod(0)
    if os.access(path, os.R_OK):  # root reads a mode-000 file: make the check see what others do
        monkeypatch.setattr(os, "access", lambda p, mode: False)
    with pytest.raises(DataError, match="permission denied"):
        read_table(path)


def test_windows_1252_file_is_read_with_a_warning(tmp_path: Path, caplog):
    path = tmp_path / "latin.csv"
    path.write_bytes("city;n\nZürich;1\nMünchen;2\n".encode("cp1252"))
    frame = read_table(path)
    assert frame["city"].tolist() == ["Zürich", "München"]
    read_table(path)
    assert caplog.text.count("Windows-1252") == 1, "one warning however often it is read"


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16"])
def test_byte_order_marks_are_honoured(tmp_path: Path, encoding: str):
    path = tmp_path / "bom.csv"
    path.write_bytes("name,n\nÅsa,1\nBo,2\n".encode(encoding))
    frame = read_table(path)
    assert list(frame.columns) == ["name", "n"] and frame["name"].tolist() == ["Åsa", "Bo"]


def test_decimal_commas_in_a_semicolon_file_are_numbers(tmp_path: Path):
    path = tmp_path / "eu.csv"
    path.write_text("price;weight;label\n1.234,5;0,75;a\n12,0;1,5;b\n3,25;2,0;a\n")
    frame = read_table(path)
    assert frame["price"].tolist() == [1234.5, 12.0, 3.25]
    assert frame["weight"].dtype == "float64"


def test_quoted_decimal_commas_in_a_comma_file_are_numbers(tmp_path: Path, caplog):
    path = tmp_path / "us.csv"
    path.write_text('price,label\n"1,5",a\n"1.002,25",b\n"2,125",a\n')
    frame = read_table(path)
    assert frame["price"].tolist() == [1.5, 1002.25, 2.125], "'1,5' can only be a decimal comma"
    assert "price" in caplog.text and "decimal commas" in caplog.text


def test_thousands_separators_are_numbers(tmp_path: Path, caplog):
    path = tmp_path / "us.csv"
    path.write_text('price,qty,label\n"5,125.70","1,500,000",a\n950.25,12,b\n"12,000.5",7,a\n')
    frame = read_table(path)
    assert frame["price"].tolist() == [5125.70, 950.25, 12000.5]
    assert frame["qty"].tolist() == [1_500_000, 12, 7]
    assert "thousands separators in price, qty" in caplog.text


def test_comma_numbers_that_may_be_thousands_are_refused(tmp_path: Path):
    path = tmp_path / "us.csv"
    path.write_text('price,label\n"1,500",a\n"2,250",b\n')
    with pytest.raises(DataError, match=r"price hold numbers like '1,500'.*thousands separator"):
        read_table(path)


def test_a_repeated_header_in_another_letter_case_is_refused(tmp_path: Path):
    path = tmp_path / "twice.csv"
    path.write_text("size,species\n1.5,a\nSIZE,SPECIES\n2.5,b\n")
    with pytest.raises(DataError, match="1 row\\(s\\) repeat the header"):
        read_table(path)


def test_nested_parquet_columns_become_json_text(tmp_path: Path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "nested.parquet"
    table = pa.table({"tags": [["a", "b"], [], None], "y": [1, 0, 1]})
    pq.write_table(table, path)
    frame = read_table(path)
    assert frame["tags"].tolist()[:2] == ['["a", "b"]', "[]"] and pd.isna(frame["tags"][2])


def test_a_stored_parquet_index_becomes_a_column(tmp_path: Path):
    path = tmp_path / "indexed.parquet"
    pd.DataFrame({"x": [1.0, 2.0]}, index=pd.Index([7, 9], name="customer")).to_parquet(path)
    assert list(read_table(path).columns) == ["customer", "x"]


def test_a_killed_writers_partial_file_is_cleaned_up_and_a_live_ones_kept(tmp_path: Path):
    import os

    from mlpipe.io.tables import TableWriter

    dead = tmp_path / ".out.csv.999999-abcdef12.partial"  # no such process
    live = tmp_path / f".out.csv.{os.getppid()}-abcdef12.partial"
    dead.write_text("half")
    live.write_text("half")
    with TableWriter(tmp_path / "out.csv") as writer:
        writer.write(pd.DataFrame({"a": [1]}))
        writer.commit()
    assert not dead.exists() and live.exists()
    assert (tmp_path / "out.csv").read_text() == "a\n1\n"


def test_names_that_collide_after_stripping_are_refused(tmp_path: Path):
    path = tmp_path / "t.parquet"
    pd.DataFrame({"a": [1], " a": [2]}).to_parquet(path)
    with pytest.raises(DataError, match="duplicate column names"):
        read_table(path)
