import numpy as np
import pandas as pd

from tasks.clean import CleanStats, clean_partition
from tasks.core.config import CleanConfig
from tasks.core.schema import Schema

SCHEMA = Schema(name="t", target="y", task="binary", numeric=["x"], categorical=["c"])


def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "x": [1.0, 1.0, np.nan, 4.0, "5", 6.0, 7.0],
            "c": ["a", "a", "b", None, "b", "a", "b"],
            "y": ["p", "p", "q", "p", None, "q", "p"],
        }
    )


def test_accounting_adds_up_with_reasons():
    out, stats = clean_partition(frame(), SCHEMA, CleanConfig())
    assert stats.rows_in == 7
    assert stats.dropped == {"missing_target": 1, "duplicate": 1}
    assert stats.rows_kept == len(out) == 5
    assert stats.rows_in == stats.rows_kept + sum(stats.dropped.values())


def test_drop_policy_per_column_and_impute_default_keeps_nan():
    out, stats = clean_partition(frame(), SCHEMA, CleanConfig(missing={"x": "drop"}))
    assert stats.dropped["missing_x"] == 1
    assert out["x"].notna().all()
    assert out["c"].isna().sum() == 1, "categorical NaN left for the fitted imputer"


def test_ffill_policy():
    out, _ = clean_partition(frame(), SCHEMA, CleanConfig(missing={"x": "ffill"}))
    assert out["x"].tolist() == [1.0, 1.0, 4.0, 6.0, 7.0]


def test_input_frame_is_not_modified():
    original = frame()
    copy = original.copy()
    clean_partition(original, SCHEMA, CleanConfig())
    pd.testing.assert_frame_equal(original, copy)


def test_partition_stats_merge_to_whole_frame_stats():
    whole = frame()
    _, all_stats = clean_partition(whole, SCHEMA, CleanConfig(drop_duplicates=False))
    _, a = clean_partition(whole.iloc[:3], SCHEMA, CleanConfig(drop_duplicates=False))
    _, b = clean_partition(whole.iloc[3:], SCHEMA, CleanConfig(drop_duplicates=False))
    assert a + b == all_stats


def test_stats_metrics_are_flat():
    stats = CleanStats(rows_in=3, rows_kept=2, dropped={"duplicate": 1})
    assert stats.metrics() == {
        "clean_rows_in": 3,
        "clean_rows_kept": 2,
        "clean_dropped_duplicate": 1,
    }
