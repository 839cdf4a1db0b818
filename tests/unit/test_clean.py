import numpy as np
import pandas as pd
import pytest

from mlpipe.config import CleanConfig
from mlpipe.data.clean import CleanStats, check_drop_rate, clean_partition
from mlpipe.errors import DataError
from mlpipe.serving.schema import Schema

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


def test_cleaning_that_drops_too_much_fails_naming_the_reasons():
    stats = CleanStats(rows_in=100, rows_kept=60, dropped={"duplicate": 35, "missing_target": 5})
    check_drop_rate(stats, 0.5)
    with pytest.raises(DataError, match=r"dropped 40 of 100 rows \(40\.0% > .*duplicate 35"):
        check_drop_rate(stats, 0.2)


def test_extra_columns_are_carried_through():
    out, _ = clean_partition(
        frame().assign(key=list("abcdefg")), SCHEMA, CleanConfig(), keep=["key"]
    )
    assert "key" in out.columns and out["key"].tolist() == ["a", "c", "d", "f", "g"]


def repetitive(n: int, seed: int) -> pd.DataFrame:
    """Few distinct rows (many duplicates), 40 gaps in ``x`` and 10 missing targets."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "x": rng.integers(0, 4, n).astype(float),
            "c": rng.choice(["u", "v"], n),
            "y": rng.choice(["a", "b"], n),
        }
    )
    frame.loc[rng.choice(n, 40, replace=False), "x"] = np.nan
    frame.loc[rng.choice(n, 10, replace=False), "y"] = None
    return frame


@pytest.mark.parametrize("parts", [2, 3, 7])
@pytest.mark.parametrize("policy", ["impute", "ffill", "drop"])
def test_cleaning_streamed_over_partitions_equals_the_whole_frames(parts, policy):
    from mlpipe.data.clean import Seen

    n = 300
    frame = repetitive(n, seed=4)
    frame.loc[[0, 100, 200], "x"] = np.nan  # gaps at partition starts
    schema = Schema(name="t", target="y", task="binary", numeric=["x"], categorical=["c"])
    cfg = CleanConfig(missing={"x": policy}, max_drop_rate=1.0)
    whole, whole_stats = clean_partition(frame, schema, cfg)
    seen, stats, pieces = Seen(), CleanStats(), []
    for rows in np.array_split(np.arange(n), parts):
        piece, piece_stats = clean_partition(frame.iloc[rows], schema, cfg, seen=seen)
        pieces.append(piece)
        stats += piece_stats
    pd.testing.assert_frame_equal(pd.concat(pieces, ignore_index=True), whole)
    assert stats == whole_stats
    assert whole_stats.dropped["duplicate"] > 50, "duplicates repeat across partitions"


@pytest.mark.parametrize("policy", ["impute", "drop"])
def test_cleaning_in_two_passes_equals_cleaning_in_order(tmp_path, policy):
    from mlpipe.data.clean import clean_in_parallel
    from mlpipe.io.engine import LOCAL
    from mlpipe.io.tables import PartitionWriter, iter_partitions

    frame = repetitive(400, seed=5)
    frame.loc[100:149, "y"] = None  # a partition with no target at all: nothing to stage
    cfg = CleanConfig(missing={"x": policy}, max_drop_rate=1.0)
    whole, whole_stats = clean_partition(frame, SCHEMA, cfg)
    with PartitionWriter(tmp_path / "raw", rows=50) as raw:
        raw.write(frame)
        source = raw.commit()
    stats = CleanStats()
    with PartitionWriter(tmp_path / "clean") as writer:
        for part in clean_in_parallel(LOCAL, source, SCHEMA, cfg, [], writer, tmp_path / "staging"):
            stats += part
        cleaned = pd.concat(iter_partitions(writer.commit()), ignore_index=True)
    pd.testing.assert_frame_equal(cleaned, whole, check_dtype=False)
    assert stats == whole_stats
    assert whole_stats.dropped["duplicate"] > 50
    assert not (tmp_path / "staging").exists()  # the first pass's rows are removed
