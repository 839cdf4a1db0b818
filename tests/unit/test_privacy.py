"""Personal data: hashed as read, detected when nobody listed it."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlpipe.config import DatasetSpec
from mlpipe.data import privacy
from mlpipe.data.datasets import iter_source, load_source
from mlpipe.data.roles import resolve_schema
from mlpipe.errors import ConfigError, DataError


def people(n: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    first = ["Anna", "Ben", "Clara", "David", "Eva", "Felix", "Greta", "Hugo", "Ida", "Jonas"]
    last = ["Meyer", "Schmidt", "Okafor", "Nguyen", "Rossi", "Silva", "Kowalski", "Berg"]
    return pd.DataFrame(
        {
            "name": [f"{rng.choice(first)} {rng.choice(last)}" for _ in range(n)],
            "email": [f"user{i}@example.org" for i in range(n)],
            "phone": [f"+49 30 {rng.integers(1000000, 9999999)}" for _ in range(n)],
            "age": rng.integers(18, 90, n),
            "city": rng.choice(["Berlin", "Hamburg", "Köln"], n),
            "spent": rng.normal(100, 20, n).round(2),
            "churned": rng.integers(0, 2, n),
        }
    )


def luhn_numbers(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        body = "4" + "".join(str(d) for d in rng.integers(0, 10, 14))
        for check in range(10):
            if privacy._luhn(body + str(check)):
                out.append(body + str(check))
                break
    return out


@pytest.fixture(autouse=True)
def salt(monkeypatch):
    monkeypatch.setenv(privacy.SALT_ENV, "test-salt")


def test_suspects_name_each_kind_of_personal_data():
    frame = people()
    frame["card"] = luhn_numbers(len(frame))
    found = privacy.suspects(frame)
    assert found == {
        "name": "people's names",
        "email": "e-mail addresses",
        "phone": "phone numbers",
        "card": "card numbers",
    }
    assert privacy.suspects(frame, skip=["email", "name", "phone", "card"]) == {}


@pytest.mark.parametrize(
    "values",
    [
        [f"row-{i:05d}" for i in range(100)],  # ids
        [f"2024-01-{1 + i % 28:02d} 10:{i % 60:02d}" for i in range(100)],  # time stamps
        [str(100000000 + i * 7919) for i in range(100)],  # numbers as text, no separators
        ["Adelie", "Gentoo", "Chinstrap"] * 40,  # a category of capitalised words
        ["New York", "Los Angeles", "San Francisco", "Las Vegas"] * 30,  # few distinct places
        [f"{1.5 + i / 100:.2f}" for i in range(100)],  # decimals
        [f"{10000 + i}-{1000 + i}" for i in range(100)],  # ZIP+4 codes
        [f"10.1.{i // 10}.{i % 10}" for i in range(100)],  # IPv4 addresses
        [f"978-3-16-{148400 + i}-0" for i in range(100)],  # ISBN-13s
    ],
)
def test_ordinary_columns_are_not_taken_for_personal_data(values):
    assert privacy.suspects(pd.DataFrame({"c": values})) == {}


def test_integer_ids_are_not_card_numbers_but_luhn_cards_are():
    ids = pd.DataFrame({"id": np.arange(10**15, 10**15 + 500, dtype="int64")})
    assert privacy.suspects(ids) == {}
    cards = pd.DataFrame({"card": [int(c) for c in luhn_numbers(100)]})
    assert privacy.suspects(cards) == {"card": "card numbers"}


def test_hashing_is_keyed_stable_idempotent_and_keeps_missing_values(monkeypatch):
    series = pd.Series(["a@x.org", None, "b@x.org", "a@x.org"])
    hashed = privacy.hash_values(series, b"k1")
    assert hashed[0] == hashed[3] != hashed[2]
    assert pd.isna(hashed[1])
    assert all(str(v).startswith("pii:") for v in hashed.dropna())
    assert privacy.hash_values(hashed, b"k1").equals(hashed)  # hashing twice changes nothing
    assert privacy.hash_values(series, b"k2")[0] != hashed[0]  # the key matters


def test_without_the_variable_the_key_is_a_private_file_made_once(monkeypatch, tmp_path):
    monkeypatch.delenv(privacy.SALT_ENV)
    monkeypatch.setenv("HOME", str(tmp_path))
    first = privacy._salt()
    path = tmp_path / ".mlpipe" / "pii-salt"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert privacy._salt() == first and len(first) == 64


def test_listed_columns_are_hashed_as_they_are_read(tmp_path: Path):
    frame = people()
    frame.to_csv(tmp_path / "people.csv", index=False)
    spec = DatasetSpec(source=str(tmp_path / "people.csv"), target="churned", pii=["email"])
    blocks = list(iter_source(spec, 50))
    assert not any(b["email"].str.contains("@").any() for b in blocks)
    whole = load_source(spec)
    assert whole["email"].tolist() == pd.concat(blocks)["email"].tolist()
    assert whole["name"].tolist() == frame["name"].tolist()  # unlisted columns untouched


def test_training_refuses_unlisted_personal_data_with_one_line():
    frame = people()
    with pytest.raises(DataError) as err:
        resolve_schema(frame, DatasetSpec(source="x.csv", target="churned"))
    line = str(err.value)
    assert "\n" not in line
    for col in ("name", "email", "phone"):
        assert f"'{col}'" in line
    assert "dataset.pii" in line and "dataset.allow_pii" in line


def test_listed_or_allowed_columns_train_and_are_never_features():
    spec = DatasetSpec(source="x.csv", target="churned", pii=["email", "phone"], allow_pii=["name"])
    schema = resolve_schema(privacy.masker(spec.pii)(people()), spec)
    assert {"email", "phone"} <= set(schema.ignore)
    assert schema.pii == ["email", "phone"]
    assert "email" not in schema.features and "phone" not in schema.features


def test_personal_data_named_as_a_feature_or_target_is_refused():
    with pytest.raises(ConfigError, match="never a feature"):
        resolve_schema(
            people(),
            DatasetSpec(
                source="x.csv",
                target="churned",
                categorical=["email"],
                pii=["email", "phone", "name"],
            ),
        )
    with pytest.raises(ConfigError, match=r"target 'churned' is listed in dataset\.pii"):
        resolve_schema(people(), DatasetSpec(source="x.csv", target="churned", pii=["churned"]))


def test_no_salt_file_is_made_when_nothing_is_listed(monkeypatch, tmp_path):
    monkeypatch.delenv(privacy.SALT_ENV)
    monkeypatch.setenv("HOME", str(tmp_path))
    frame = pd.DataFrame({"a": [1]})
    assert privacy.masker([])(frame) is frame
    assert not os.path.exists(tmp_path / ".mlpipe")


@pytest.mark.parametrize(
    ("values", "kind"),
    [
        (
            [
                f"{f} {s}"
                for f in ("José", "Zoë", "Ömer", "Łukasz", "Ana")
                for s in ("García", "O'Brien", "McDonald", "Nowak-Kowalska", "Smith")
            ],
            "people's names",
        ),
        (
            [
                f"{s.upper()}, {f.upper()}"
                for f in ("ANN", "BOB", "CY", "DI", "ED")
                for s in ("LEE", "KIM", "ROY", "DAY", "FOX")
            ],
            "people's names",
        ),
        ([f"josé{i}@exämple.de" for i in range(60)] + ["n/a"] * 25, "e-mail addresses"),
        ([f"(030) 555-{1000 + i} ext. 12" for i in range(50)], "phone numbers"),
    ],
)
def test_names_addresses_and_phones_in_other_shapes_are_found(values, kind):
    assert privacy.suspects(pd.DataFrame({"c": values})) == {"c": kind}


def test_a_number_hashes_alike_whether_its_block_read_it_as_integer_or_float():
    as_int = privacy.hash_values(pd.Series([5551234567], dtype="int64"), b"k")
    as_float = privacy.hash_values(pd.Series([5551234567.0, None]), b"k")
    as_object = privacy.hash_values(pd.Series([5551234567.0, "x"], dtype=object), b"k")
    assert as_int[0] == as_float[0] == as_object[0]


def test_value_checks_of_hashed_columns_leave_the_suite():
    from mlpipe.quality.suites import batch_suite, hashed_columns

    suite = {
        "name": "s",
        "expectations": [
            {"type": "expect_column_to_exist", "kwargs": {"column": "email"}},
            {"type": "expect_column_values_to_be_in_set",
             "kwargs": {"column": "email", "value_set": ["a@b.org"]}},
            {"type": "expect_column_values_to_be_in_set",
             "kwargs": {"column": "city", "value_set": ["Berlin"]}},
            {"type": "expect_table_columns_to_match_set",
             "kwargs": {"column_set": ["email", "city", "y"]}},
        ],
    }  # fmt: skip
    kept = [e["type"] for e in hashed_columns(suite, ["email"])["expectations"]]
    assert kept == ["expect_column_to_exist", "expect_column_values_to_be_in_set",
                    "expect_table_columns_to_match_set"]  # fmt: skip
    batch = batch_suite(suite, "y", has_target=False, pii=["email"])["expectations"]
    assert [e["kwargs"].get("column") for e in batch] == ["city", None]
    assert batch[1]["kwargs"]["column_set"] == ["city"]  # a batch need not send personal data
