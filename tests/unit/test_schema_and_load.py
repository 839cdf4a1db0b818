import numpy as np
import pandas as pd
import pytest

from tasks.core.config import DatasetSpec, ImageSpec
from tasks.core.errors import ConfigError, DataError
from tasks.core.schema import Schema, coerce_features, coerce_target, infer_roles, infer_task
from tasks.load import resolve_schema
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
    numeric, categorical, ignored = infer_roles(frame, "label", [])
    assert numeric == ["size", "weight"]
    assert categorical == ["colour", "region"]
    assert ignored == ["id"], "an all-distinct text column is an identifier, not a category"


def test_coerce_features_counts_values_lost():
    schema = Schema(name="t", target="y", task="binary", numeric=["x"], categorical=["c"])
    frame = pd.DataFrame({"x": ["1", "2.5", "bad", np.inf, None], "c": ["a", None, "b", 1, "a"]})
    out, counts = coerce_features(frame, schema)
    assert out["x"].dtype == "float64"
    assert out["x"].isna().tolist() == [False, False, True, True, True]
    assert counts == {"x": 2}, "'bad' and inf became missing; None was already missing"
    assert out["c"].tolist()[:2] == ["a", np.nan] or pd.isna(out["c"].iloc[1])
    assert out["c"].iloc[3] == "1", "categoricals become strings"


def test_coerce_features_adds_absent_columns_as_missing():
    schema = Schema(name="t", target="y", task="binary", numeric=["x", "z"], categorical=["c"])
    out, _ = coerce_features(pd.DataFrame({"x": [1.0]}), schema)
    assert out["z"].isna().all() and out["c"].isna().all()


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
