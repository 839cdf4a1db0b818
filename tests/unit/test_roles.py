import numpy as np
import pandas as pd
import pytest

from mlpipe.config import DatasetSpec, ImageSpec
from mlpipe.data.roles import infer_roles, infer_task, looks_like_identifier, resolve_schema
from mlpipe.errors import ConfigError, DataError
from mlpipe.serving.schema import Schema, coerce_features, coerce_target
from tests.helpers import make_mixed_frame


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["a", "b", "a"], "binary"),
        (["a", "b", "c"], "multiclass"),
        ([0, 1, 1, 0], "binary"),
        ([0, 1, 2, 3, 4], "multiclass"),
        ([0.5, 1.25, 3.0, 7.75], "regression"),
        (list(range(100)), "regression"),
        ([True, False, True], "binary"),
    ],
)
def test_infer_task(values, expected):
    assert infer_task(pd.Series(values)) == expected


def test_infer_roles_numeric_text_categorical_and_ids():
    frame = make_mixed_frame(n=200)
    frame["size"] = frame["size"].astype(str)
    frame.loc[3, "size"] = "oops"  # one typo in a numeric column keeps it numeric
    numeric, categorical, ignored, identifiers = infer_roles(frame, "label", [])
    assert numeric == ["size", "weight"]
    assert categorical == ["colour", "region"]
    assert ignored == ["id"], "an all-distinct text column is an identifier, not a category"
    assert identifiers == ["id"], "named like a key, all values distinct"


def test_coerce_features_counts_values_lost():
    schema = Schema(name="t", target="y", task="binary", numeric=["x"], categorical=["c"])
    frame = pd.DataFrame({"x": ["1", "2.5", "bad", np.inf, None], "c": ["a", None, "b", 1, "a"]})
    out, counts = coerce_features(frame, schema)
    assert out["x"].dtype == "float64"
    assert out["x"].isna().tolist() == [False, False, True, True, True]
    assert counts == {"x": 2}, "'bad' and inf became missing; None was already missing"
    assert out["c"].iloc[0] == "a" and pd.isna(out["c"].iloc[1]), "missing stays missing"
    assert out["c"].iloc[3] == "1", "categoricals become strings"


def test_coerce_features_adds_absent_columns_as_missing():
    schema = Schema(name="t", target="y", task="binary", numeric=["x", "z"], categorical=["c"])
    out, _ = coerce_features(pd.DataFrame({"x": [1.0]}), schema)
    assert out["z"].isna().all() and out["c"].isna().all()


def test_surrounding_spaces_are_one_label_and_one_category():
    labels = coerce_target(pd.Series(["a", "a ", " b", np.nan]), "binary")
    assert labels.tolist()[:3] == ["a", "a", "b"] and pd.isna(labels.iloc[3])
    schema = Schema(name="t", target="y", task="binary", numeric=[], categorical=["c"])
    out, _ = coerce_features(pd.DataFrame({"c": ["male ", "male", np.nan]}), schema)
    assert out["c"].tolist()[:2] == ["male", "male"] and pd.isna(out["c"].iloc[2])


def test_coerce_target_keeps_integer_labels():
    out = coerce_target(pd.Series([1.0, 2.0, np.nan]), "multiclass")
    assert out.tolist()[:2] == [1, 2] and isinstance(out.iloc[0], int)


def test_resolve_schema_infers_from_data():
    schema = resolve_schema(make_mixed_frame(), DatasetSpec(source="mixed.csv", target="label"))
    assert (schema.name, schema.task) == ("mixed", "binary")
    assert schema.features == ["size", "weight", "colour", "region"]
    assert schema.ignore == ["id"]


def test_resolve_schema_explicit_roles_win():
    spec = DatasetSpec(source="m.csv", target="label", categorical=["size"], ignore=["region"])
    schema = resolve_schema(make_mixed_frame(), spec)
    assert "size" in schema.categorical and "size" not in schema.numeric
    assert "region" in schema.ignore and "region" not in schema.features


@pytest.mark.parametrize(
    ("frame", "spec", "message"),
    [
        (make_mixed_frame(), DatasetSpec(source="m.csv", target="nope"), "target column 'nope'"),
        (make_mixed_frame(), DatasetSpec(source="m.csv"), "no target column"),
        (
            make_mixed_frame().assign(label=np.nan),
            DatasetSpec(source="m.csv", target="label"),
            "all missing",
        ),
        (
            make_mixed_frame().assign(label="same"),
            DatasetSpec(source="m.csv", target="label"),
            "single class",
        ),
        (make_mixed_frame(n=5), DatasetSpec(source="m.csv", target="label"), "only 5 rows"),
        (
            make_mixed_frame().assign(label=["a", "1", "2"] * 100),
            DatasetSpec(source="m.csv", target="label"),
            "mixes numbers",
        ),
        (
            make_mixed_frame().assign(label=["yes", "no", "Yes "] * 100),
            DatasetSpec(source="m.csv", target="label"),
            "differ only in letter case \\('Yes'/'yes'\\)",
        ),
        (
            make_mixed_frame()
            .assign(label=pd.Categorical(["Hi", "lo", "hi"] * 100))
            .astype({"label": "category"}),
            DatasetSpec(source="m.csv", target="label"),
            "differ only in letter case",
        ),
        (
            make_mixed_frame().assign(label=[f"k{i}" for i in range(300)]),
            DatasetSpec(source="m.csv", target="label"),
            "too many classes",
        ),
        (
            make_mixed_frame(),
            DatasetSpec(source="m.csv", target="label", ignore=["ghost"]),
            "not in the data: ghost",
        ),
    ],
)
def test_resolve_schema_errors(frame, spec, message):
    with pytest.raises((DataError, ConfigError), match=message):
        resolve_schema(frame, spec)


def test_image_spec_orders_pixels_first_and_checks_shape():
    frame = pd.DataFrame(np.zeros((20, 4)), columns=["p_1", "other", "p_0", "p_2"])
    frame["y"] = [0, 1] * 10
    spec = DatasetSpec(
        source="img.csv",
        target="y",
        image=ImageSpec(pixel_columns=["p_0", "p_1", "p_2", "other"], shape=(2, 2)),
    )
    schema = resolve_schema(frame, spec)
    assert schema.numeric == ["p_0", "p_1", "p_2", "other"]
    bad = spec.model_copy(update={"image": ImageSpec(pixel_prefix="p_", shape=(2, 2))})
    with pytest.raises(ConfigError, match="needs 4 pixel columns, found 3"):
        resolve_schema(frame, bad)


def sorted_by_target(n: int = 200) -> pd.DataFrame:
    frame = make_mixed_frame(n=n).sort_values("label", kind="stable").reset_index(drop=True)
    return frame.drop(columns=["id"])


@pytest.mark.parametrize(
    ("name", "values"),
    [
        ("row", np.arange(200)),  # the classic: a row number, in a file sorted by the target
        ("n", np.arange(1000, 1200)[::-1]),  # decreasing
        ("record", np.random.default_rng(0).permutation(200)),  # shuffled row numbers
        ("customer_id", np.random.default_rng(1).choice(10**6, 200, replace=False)),  # a key
        ("Unnamed: 0", np.arange(200)),  # pandas' index written to CSV
    ],
)
def test_integer_identifiers_are_ignored(name: str, values: np.ndarray):
    frame = sorted_by_target().assign(**{name: values})
    schema = resolve_schema(frame, DatasetSpec(source="m.csv", target="label"))
    assert name in schema.identifiers and name in schema.ignore
    assert name not in schema.features


def test_unique_measurements_are_not_identifiers():
    rng = np.random.default_rng(0)
    assert not looks_like_identifier(pd.Series(rng.normal(size=200)), "height")
    assert not looks_like_identifier(pd.Series(rng.choice(10**6, 200, replace=False)), "income")
    assert not looks_like_identifier(pd.Series(rng.integers(0, 5, 200)), "id"), "not unique"


def test_explicit_numeric_role_keeps_an_identifier_like_column():
    frame = sorted_by_target().assign(row=np.arange(200))
    spec = DatasetSpec(source="m.csv", target="label", numeric=["row"])
    assert "row" in resolve_schema(frame, spec).numeric


def test_category_columns_are_categorical_even_with_number_codes():
    frame = make_mixed_frame(n=200).assign(
        answer=pd.Categorical(np.random.default_rng(0).integers(1, 6, 200))
    )
    schema = resolve_schema(frame, DatasetSpec(source="m.csv", target="label"))
    assert "answer" in schema.categorical and "answer" not in schema.numeric


def test_all_missing_columns_are_ignored():
    frame = make_mixed_frame(n=200).assign(empty=np.nan)
    schema = resolve_schema(frame, DatasetSpec(source="m.csv", target="label"))
    assert "empty" in schema.ignore


def test_mixed_target_is_allowed_when_the_task_is_explicit():
    frame = make_mixed_frame().assign(label=["a", "1", "2"] * 100)
    schema = resolve_schema(frame, DatasetSpec(source="m.csv", target="label", task="multiclass"))
    assert schema.task == "multiclass"


def test_a_timestamp_running_through_a_file_sorted_by_the_target_is_a_leak():
    frame = sorted_by_target()
    stamps = 1.7e9 + np.cumsum(np.random.default_rng(1).uniform(0.5, 2.0, len(frame)))
    leaky = frame.assign(ts=stamps)
    schema = resolve_schema(leaky, DatasetSpec(source="m.csv", target="label"))
    assert "ts" in schema.leakage and "ts" not in schema.features
    # The same timestamp in a shuffled file is an ordinary feature.
    shuffled = leaky.sample(frac=1, random_state=0).reset_index(drop=True)
    shuffled["ts"] = stamps
    schema = resolve_schema(shuffled, DatasetSpec(source="m.csv", target="label"))
    assert "ts" in schema.numeric and "ts" not in schema.leakage


def test_roles_inferred_on_a_sample_match_the_whole_table(monkeypatch: pytest.MonkeyPatch):
    import mlpipe.data.roles as roles

    rng = np.random.default_rng(0)
    n = 3000
    label = np.sort(rng.integers(0, 3, n))  # the file is sorted by the target
    frame = pd.DataFrame(
        {
            "ticket": rng.permutation(n) + 5000,  # shuffled consecutive integers: an identifier
            "almost_unique": np.append(rng.permutation(n - 1), 7),  # one repeat: not an id
            "stamp": np.arange(n) * 60.5 + 0.25,  # a time running through the sorted file
            "x": rng.normal(size=n),
            "colour": rng.choice(["red", "blue", "green"], n),
            "label": label,
        }
    )
    spec = DatasetSpec(source="t.csv", target="label")
    whole = resolve_schema(frame, spec)
    monkeypatch.setattr(roles, "SAMPLE_ROWS", 400)
    sampled = resolve_schema(frame, spec)
    assert sampled == whole
    assert sampled.identifiers == ["ticket"], "the whole column was checked, not the sample"
    assert "almost_unique" in sampled.numeric, "unique in a sample, repeated in the table"
    assert sampled.leakage == ["stamp"]


def test_flags_with_missing_values_read_as_numbers():
    from mlpipe.serving.schema import to_numbers

    flags = pd.Series([True, None, False], dtype=object)  # how a part with a gap reads back
    assert to_numbers(flags).tolist()[::2] == [1.0, 0.0] and to_numbers(flags).isna()[1]
