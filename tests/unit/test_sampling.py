import itertools

import numpy as np
import pandas as pd
import pytest

from mlpipe.data.sampling import RowSample, priorities


@pytest.mark.parametrize("cuts", [[], [3], [100, 101, 640], list(range(10, 1000, 10))])
def test_the_sample_is_the_same_whatever_the_partitioning(cuts: list[int]):
    frame = pd.DataFrame({"a": np.arange(1000), "b": np.arange(1000) * 2.0})
    sample = RowSample(64, seed=5)
    bounds = [0, *cuts, len(frame)]
    for a, b in itertools.pairwise(bounds):
        sample.add(rows=frame.iloc[a:b], twice=frame["b"].to_numpy()[a:b])
    expected = np.sort(np.argsort(priorities(0, 1000, seed=5))[:64])  # bottom-64, row order
    assert sample.parts["rows"]["a"].tolist() == expected.tolist()
    assert sample.parts["twice"].tolist() == (expected * 2.0).tolist()  # parts stay aligned
    assert sample.rows == 1000 and not sample.complete


def test_samples_of_partitions_merged_in_order_equal_the_sample_of_the_table():
    frame = pd.DataFrame({"a": np.arange(1000)})
    whole, merged = RowSample(64, seed=5), RowSample(64, seed=5)
    whole.add(rows=frame)
    for a, b in itertools.pairwise([0, 5, 400, 999, 1000]):
        part = RowSample(64, seed=5)
        part.add(start=a, rows=frame.iloc[a:b])
        merged.merge(part)
    assert merged.rows == 1000
    assert merged.keys.tolist() == whole.keys.tolist()
    pd.testing.assert_frame_equal(merged.parts["rows"], whole.parts["rows"])
    with pytest.raises(ValueError, match="same size and seed"):
        merged.merge(RowSample(64, seed=6))


def test_a_table_smaller_than_the_sample_is_kept_whole():
    sample = RowSample(100)
    sample.add(y=np.arange(30))
    sample.add(y=np.arange(30, 50))
    assert sample.complete and sample.parts["y"].tolist() == list(range(50))


def test_seeds_draw_different_samples():
    draws = []
    for seed in (0, 1):
        sample = RowSample(10, seed=seed)
        sample.add(y=np.arange(10_000))
        draws.append(sample.parts["y"].tolist())
    assert draws[0] != draws[1]


def test_parts_of_one_partition_must_have_the_same_length():
    with pytest.raises(ValueError, match="differ in length: y=3, out=2"):
        RowSample(10).add(y=np.arange(3), out=np.arange(2))
