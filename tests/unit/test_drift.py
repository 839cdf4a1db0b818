import itertools

import numpy as np
import pandas as pd
import pytest

from mlpipe.learn.drift import Profile, build_profile, compare
from mlpipe.serving.schema import Schema

SCHEMA = Schema(
    name="shop", target="y", task="regression",
    numeric=["price", "visits", "basket"], categorical=["region", "channel"],
)  # fmt: skip


def year(n: int, seed: int, shift_price: float = 0.0, web_share: float = 0.3) -> pd.DataFrame:
    """One year of a time-stamped shop table; the generating process is fixed."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "price": rng.normal(100 + shift_price, 15, n),
            "visits": rng.poisson(20, n),
            "basket": rng.gamma(2.0, 10.0, n),
            "region": rng.choice(["north", "south", "east"], n, p=[0.5, 0.3, 0.2]),
            "channel": rng.choice(["web", "store"], n, p=[web_share, 1 - web_share]),
        }
    )


def test_shifted_columns_drift_and_stable_ones_do_not():
    reference = build_profile(year(5000, seed=2023), SCHEMA)
    later = year(5000, seed=2024, shift_price=20.0, web_share=0.7)
    report = compare(reference, later, threshold=0.2)
    assert sorted(report.drifted) == ["channel", "price"]
    stable = {c.column: c for c in report.columns if not c.drifted}
    assert set(stable) == {"visits", "basket", "region"}
    assert all(c.psi < 0.05 for c in stable.values())


def test_large_samples_do_not_flag_trivial_shifts():
    reference = build_profile(year(50_000, seed=1), SCHEMA)
    # +1 on a price with std 15: highly significant at this size, but a trivial effect.
    report = compare(reference, year(50_000, seed=2, shift_price=1.0), threshold=0.2)
    price = next(c for c in report.columns if c.column == "price")
    assert price.p_adjusted < 0.001, "the shift is statistically significant..."
    assert not price.drifted and price.psi < 0.02, "...but far below the effect-size threshold"
    assert report.drifted == []


def test_small_noisy_samples_need_significance():
    reference = build_profile(year(200, seed=3), SCHEMA)
    report = compare(reference, year(60, seed=4), threshold=0.2)
    assert report.drifted == [], [c for c in report.columns if c.drifted]


def test_profile_is_compact_json_and_roundtrips():
    profile = build_profile(year(1000, seed=5), SCHEMA)
    text = profile.model_dump_json()
    assert len(text) < 20_000
    again = Profile.model_validate_json(text)
    assert compare(again, year(1000, seed=5)).drifted == []


def test_missing_values_and_new_categories_count_as_drift():
    reference = build_profile(year(3000, seed=6), SCHEMA)
    later = year(3000, seed=7)
    later.loc[: len(later) // 2, "basket"] = np.nan
    later.loc[: len(later) // 2, "region"] = "mars"
    report = compare(reference, later)
    assert {"basket", "region"} <= set(report.drifted)
    region = next(c for c in report.columns if c.column == "region")
    assert region.distance > 0.3, "Jensen-Shannon distance sees the new category"


@pytest.mark.parametrize("missing_column", ["price", "region"])
def test_absent_columns_are_skipped(missing_column: str):
    reference = build_profile(year(500, seed=8), SCHEMA)
    report = compare(reference, year(500, seed=9).drop(columns=[missing_column]))
    assert missing_column not in {c.column for c in report.columns}


def _cut(frame: pd.DataFrame, cuts: list[int]) -> list[pd.DataFrame]:
    bounds = [0, *cuts, len(frame)]
    return [frame.iloc[a:b] for a, b in itertools.pairwise(bounds)]


@pytest.mark.parametrize("cuts", [[10], [1, 2, 3], [700, 701, 2500]])
def test_drift_over_partitions_equals_drift_of_the_whole_frame(cuts: list[int]):
    reference = build_profile(year(3000, seed=11), SCHEMA)
    later = year(3000, seed=12, shift_price=8.0, web_share=0.5)
    later.loc[::7, "price"] = np.nan
    later.loc[::5, "region"] = None
    whole = compare(reference, later)
    parts = compare(reference, _cut(later, cuts))
    assert parts.rows == whole.rows == 3000
    for a, b in zip(whole.columns, parts.columns, strict=True):
        assert a.column == b.column and a.drifted == b.drifted
        assert (a.psi, a.p_value, a.distance) == pytest.approx((b.psi, b.p_value, b.distance))


def test_profile_over_partitions_equals_the_whole_frames():
    frame = year(4000, seed=13)
    frame.loc[::9, "basket"] = np.nan
    frame.loc[frame.index[3:], "visits"] = np.nan  # mostly missing: present only at the start
    parts = [frame.iloc[:0], *_cut(frame, [1, 1000, 2500])]  # an empty first partition too
    assert build_profile(parts, SCHEMA) == build_profile(frame, SCHEMA)


def test_a_column_absent_from_a_partition_is_missing_there():
    reference = build_profile(year(3000, seed=14), SCHEMA)
    later = year(3000, seed=15)
    whole = later.copy()
    whole.loc[whole.index[:1000], ["price", "region"]] = np.nan
    parts = [later.iloc[:1000].drop(columns=["price", "region"]), later.iloc[1000:]]
    assert compare(reference, parts).columns == compare(reference, whole).columns


def test_large_training_tables_are_profiled_on_a_uniform_sample(monkeypatch: pytest.MonkeyPatch):
    import mlpipe.learn.drift as drift

    frame = year(20_000, seed=16).sort_values("price", ignore_index=True)  # sorted: no shortcut
    exact = build_profile(frame, SCHEMA)
    monkeypatch.setattr(drift, "PROFILE_SAMPLE_ROWS", 5000)
    sampled = build_profile(_cut(frame, [7000, 14_000]), SCHEMA)
    assert sampled.rows == exact.rows == 20_000
    assert sampled.categorical == exact.categorical  # counted on every row
    for col, num in sampled.numeric.items():
        assert sum(num.shares) == pytest.approx(1.0)
        assert num.quantiles[50] == pytest.approx(exact.numeric[col].quantiles[50], rel=0.05)
    assert compare(sampled, year(5000, seed=17)).drifted == []
