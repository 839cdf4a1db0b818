import numpy as np
import pandas as pd
import pytest

from tasks.core.config import FeatureConfig, SplitConfig
from tasks.core.errors import DataError
from tasks.core.schema import Schema
from tasks.features import fit_preprocessor, transform_partition
from tasks.split import class_labels, split_frame


def labelled(n: int = 200) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"x": rng.normal(size=n), "y": ["a"] * (n * 3 // 4) + ["b"] * (n // 4)})


def test_split_sizes_disjoint_seeded_and_stratified():
    frame = labelled().reset_index(names="row")
    train, val, test = split_frame(frame, "y", True, SplitConfig(), seed=1)
    assert (len(train), len(val), len(test)) == (140, 20, 40)
    rows = [set(p["row"]) for p in (train, val, test)]
    assert not (rows[0] & rows[1] or rows[0] & rows[2] or rows[1] & rows[2]), "splits overlap"
    for part in (train, val, test):
        assert part["y"].eq("b").mean() == pytest.approx(0.25, abs=0.02), "stratified"
    again = split_frame(frame, "y", True, SplitConfig(), seed=1)
    pd.testing.assert_frame_equal(train, again[0])
    other = split_frame(frame, "y", True, SplitConfig(), seed=2)
    assert not train["row"].equals(other[0]["row"]), "a different seed gives a different split"


def test_split_too_few_rows():
    with pytest.raises(DataError, match="too few"):
        split_frame(labelled(4), "y", True, SplitConfig(), seed=0)


def test_class_labels_sorted_plain_values():
    assert class_labels(pd.Series([np.int64(3), np.int64(1), np.int64(3)])) == [1, 3]


SCHEMA = Schema(name="t", target="y", task="binary", numeric=["n"], categorical=["c"])


def mixed(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {"n": rng.normal(10, 2, n), "c": rng.choice(["u", "v", "w"], n).astype(object)}
    )
    frame.loc[::7, "n"] = np.nan
    frame.loc[::5, "c"] = np.nan
    return frame


def test_preprocessor_fits_on_train_only_and_transforms_partition_wise():
    train, other = mixed(100, 0), mixed(60, 1)
    pre = fit_preprocessor(train, SCHEMA, FeatureConfig())
    scaler = pre.named_transformers_["num"].named_steps["scale"]
    imputed = train["n"].fillna(train["n"].median())
    assert scaler.mean_[0] == pytest.approx(imputed.mean()), "statistics come from train"
    whole = transform_partition(other, pre)
    parts = pd.concat(
        [transform_partition(other.iloc[:25], pre), transform_partition(other.iloc[25:], pre)],
        ignore_index=True,
    )
    pd.testing.assert_frame_equal(whole, parts)
    assert whole.dtypes.eq("float32").all() and not whole.isna().any().any()


def test_unseen_category_is_tolerated():
    pre = fit_preprocessor(mixed(100, 0), SCHEMA, FeatureConfig())
    out = transform_partition(pd.DataFrame({"n": [1.0], "c": ["never-seen"]}), pre)
    assert out.shape[0] == 1 and np.isfinite(out.to_numpy()).all()


def test_auto_scaler_is_minmax_for_images():
    schema = Schema(
        name="i", target="y", task="binary", numeric=["p0", "p1", "p2", "p3"], categorical=[],
        image_shape=(2, 2), pixel_columns=["p0", "p1", "p2", "p3"],
    )  # fmt: skip
    frame = pd.DataFrame(np.arange(40.0).reshape(10, 4), columns=schema.numeric)
    out = transform_partition(frame, fit_preprocessor(frame, schema, FeatureConfig()))
    assert out.to_numpy().min() == 0 and out.to_numpy().max() == 1
    assert list(out.columns) == [f"num__p{i}" for i in range(4)], "pixel order preserved"
