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
