"""Database and remote sources: blocks through a cursor, URLs, errors without passwords."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlpipe.config import DatasetSpec, build_config
from mlpipe.data.datasets import dataset_name, iter_source, load_source
from mlpipe.errors import ConfigError, DataError
from mlpipe.io import sources


@pytest.fixture
def shop_db(tmp_path: Path) -> str:
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(
        {
            "id": np.arange(2500),
            "price": rng.normal(100, 10, 2500).round(2),
            "region": rng.choice(["north", "south"], 2500),
            "bought": rng.integers(0, 2, 2500),
        }
    )
    with sqlite3.connect(tmp_path / "shop.db") as con:
        frame.to_sql("orders", con, index=False)
    return f"sqlite:///{tmp_path / 'shop.db'}"


def test_a_table_is_read_in_blocks_with_its_types(shop_db: str):
    spec = DatasetSpec(source=shop_db, table="orders", target="bought")
    blocks = list(iter_source(spec, 1000))
    assert [len(b) for b in blocks] == [1000, 1000, 500]
    whole = pd.concat(blocks, ignore_index=True)
    assert whole["id"].tolist() == list(range(2500))
    assert pd.api.types.is_integer_dtype(whole["bought"])
    assert pd.api.types.is_float_dtype(whole["price"])
    assert dataset_name(spec) == "orders"


def test_a_query_selects_rows_and_columns(shop_db: str):
    spec = DatasetSpec(
        source=shop_db,
        query="SELECT price, region, bought FROM orders WHERE id >= 2000 ORDER BY id",
        target="bought",
    )
    frame = load_source(spec)
    assert list(frame.columns) == ["price", "region", "bought"]
    assert len(frame) == 500
    assert dataset_name(spec) == "shop"  # the SQLite file's stem


@pytest.mark.parametrize(
    ("query", "table", "said"),
    [
        ("SELECT nope FROM orders", None, "dataset.query failed on sqlite:///"),
        (None, "missing_table", "cannot read table missing_table from sqlite:///"),
    ],
)
def test_a_failing_query_is_one_line(shop_db: str, query, table, said):
    spec = DatasetSpec(source=shop_db, query=query, table=table, target="bought")
    with pytest.raises(DataError) as err:
        list(iter_source(spec, 100))
    assert said in str(err.value)
    assert "\n" not in str(err.value)


def test_an_unreachable_database_never_shows_the_password(monkeypatch):
    monkeypatch.setenv(sources.PASSWORD_ENV, "hunter2-secret")
    spec = DatasetSpec(source="postgresql://me@127.0.0.1:1/shop", table="t", target="y")
    with pytest.raises(DataError) as err:
        list(iter_source(spec, 100))
    text = str(err.value)
    assert text.startswith("cannot read table t from postgresql://me@127.0.0.1:1/shop:")
    assert "hunter2" not in text


def test_the_password_leaves_the_url():
    bare, password = sources.split_password("postgresql://me:p%40ss@db:5432/shop")
    assert (bare, password) == ("postgresql://me@db:5432/shop", "p@ss")
    # An unescaped "@" or "/" belongs to the password (the last "@" ends it), not to the user.
    bare, password = sources.split_password("postgresql://me:SE@C/R@db/shop?sslmode=disable")
    assert (bare, password) == ("postgresql://me@db/shop?sslmode=disable", "SE@C/R")
    assert sources.split_password("sqlite:///x.db") == ("sqlite:///x.db", None)
    assert sources.is_database("postgres://me@db/shop")
    assert sources.is_remote("https://host/x.csv") and not sources.is_remote("sqlite:///x.db")
    assert not sources.is_remote("data/x.csv")


def test_the_config_names_what_a_database_source_needs():
    with pytest.raises(ConfigError, match=r"needs dataset\.query"):
        build_config({"dataset": {"source": "sqlite:///x.db"}})
    with pytest.raises(ConfigError, match=r"dataset\.query needs a database URL"):
        build_config({"dataset": {"source": "x.csv", "query": "SELECT 1"}})
    with pytest.raises(ConfigError, match="holds a password"):
        build_config({"dataset": {"source": "postgresql://me:pw@db/x", "table": "t"}})


def test_a_remote_file_is_read_like_a_local_one(web_folder, tmp_path):
    url, folder = web_folder
    frame = pd.DataFrame({"a": ["1,5", "2,25", "3,0"], "b": ["x", "y", "z"]})
    frame.to_csv(folder / "comma.csv", sep=";", index=False)
    got = load_source(DatasetSpec(source=f"{url}/comma.csv"))
    assert got["a"].tolist() == [1.5, 2.25, 3.0]  # decimal commas, as for a local file
    pd.DataFrame({"v": np.arange(10)}).to_parquet(folder / "v.parquet")
    blocks = list(iter_source(DatasetSpec(source=f"{url}/v.parquet"), 4))
    assert sum(len(b) for b in blocks) == 10
    # No copy is left behind.
    assert not list(Path(sources.tempfile.gettempdir()).glob("mlpipe-remote-*"))


def test_a_missing_remote_file_is_one_line(web_folder):
    url, _ = web_folder
    with pytest.raises(DataError, match=r"^data not found: http://127\.0\.0\.1:\d+/none\.csv$"):
        load_source(DatasetSpec(source=f"{url}/none.csv"))


def test_a_remote_folder_of_parquet_files(tmp_path):
    folder = tmp_path / "lake" / "sales"
    for part in range(3):
        (folder / f"year={2020 + part}").mkdir(parents=True)
        pd.DataFrame({"v": [part] * 5}).to_parquet(folder / f"year={2020 + part}" / "p.parquet")
    frame = load_source(DatasetSpec(source=f"file://{folder}"))
    assert len(frame) == 15
    assert sorted(frame["year"].astype(int).unique()) == [2020, 2021, 2022]


def test_an_unknown_protocol_is_one_line():
    with pytest.raises(DataError, match=r"cannot open nosuchfs://bucket/x\.csv"):
        load_source(DatasetSpec(source="nosuchfs://bucket/x.csv"))


def test_a_query_can_only_read(shop_db: str, tmp_path: Path):
    for query in (
        "DROP TABLE orders",
        "  -- cleanup\n DELETE FROM orders",
        "UPDATE orders SET id=1",
    ):
        spec = DatasetSpec(source=shop_db, query=query, target="bought")
        with pytest.raises(DataError, match=r"^dataset\.query must read data"):
            list(iter_source(spec, 100))
    with sqlite3.connect(tmp_path / "shop.db") as con:
        assert con.execute("SELECT count(*) FROM orders").fetchone() == (2500,)
    # A mistyped SQLite path is an error, not a new empty database.
    spec = DatasetSpec(source=f"sqlite:///{tmp_path / 'typo.db'}", table="orders")
    with pytest.raises(DataError, match="unable to open database file"):
        list(iter_source(spec, 100))
    assert not (tmp_path / "typo.db").exists()


def test_colons_are_sql_and_duplicate_names_are_refused(shop_db: str):
    spec = DatasetSpec(
        source=shop_db, query="SELECT id, 'at 10:30' AS note FROM orders ORDER BY id LIMIT 3"
    )
    assert load_source(spec)["note"].tolist() == ["at 10:30"] * 3
    spec = DatasetSpec(source=shop_db, query="SELECT id, id FROM orders")
    with pytest.raises(DataError, match="duplicate column names: id"):
        list(iter_source(spec, 100))


def test_driver_objects_become_the_same_text_on_every_read():
    import datetime as dt

    frame = pd.DataFrame(
        {
            "blob": [memoryview(b"\x00\xff"), None],
            "doc": [{"b": 1, "a": [1, 2]}, None],
            "wait": pd.to_timedelta([dt.timedelta(days=1), None]),
        }
    )
    plain = sources._plain(frame)
    assert plain["blob"].tolist()[0] == "00ff"
    assert plain["doc"].tolist()[0] == '{"a": [1, 2], "b": 1}'
    assert plain["wait"].tolist()[0] == 86400.0


def test_a_remote_name_without_a_type_or_with_a_query_string(web_folder):
    url, folder = web_folder
    pd.DataFrame({"v": np.arange(6)}).to_parquet(folder / "export")
    assert len(load_source(DatasetSpec(source=f"{url}/export"))) == 6  # Parquet by its magic
    pd.DataFrame({"v": np.arange(4)}).to_csv(folder / "x.csv", index=False)
    assert len(load_source(DatasetSpec(source=f"{url}/x.csv?version=2"))) == 4
    (folder / "page.html").write_text("<html></html>")
    with pytest.raises(DataError) as err:
        load_source(DatasetSpec(source=f"{url}/page.html"))
    assert f"{url}/page.html" in str(err.value) and "mlpipe-remote" not in str(err.value)


def test_a_remote_output_folder_is_made_before_any_work(tmp_path):
    sources.check_writable_url(f"file://{tmp_path}/new/folder/out.parquet")
    assert (tmp_path / "new" / "folder").is_dir()


@pytest.mark.parametrize(
    "query",
    [
        "SELECT * FROM orders; COMMIT; DELETE FROM orders",
        "SELECT 1; DROP TABLE orders",
        "select 1 ; /* more */ select 2",
    ],
)
def test_a_query_is_one_statement(shop_db: str, query: str):
    with pytest.raises(DataError, match=r"^dataset\.query holds \d statements: give one SELECT"):
        list(iter_source(DatasetSpec(source=shop_db, query=query), 100))


def test_semicolons_inside_strings_names_and_comments_are_not_statements(shop_db: str):
    query = "SELECT 'a;b' AS \"c;d\", id FROM orders /* ; */ ORDER BY id LIMIT 2; -- end;"
    frame = load_source(DatasetSpec(source=shop_db, query=query))
    assert frame["c;d"].tolist() == ["a;b", "a;b"]
