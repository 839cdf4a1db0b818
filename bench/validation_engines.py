"""Validate 1M rows x 20 columns with ~40 expectations: our engine, GX (COMPLETE), plain pandas.

Prints wall times measured in this one run (best of --repeat) and the ratios; the target is
our engine <= 2x plain vectorised pandas. All three must find the same failing rows.
Usage: .venv/bin/python bench/validation_engines.py [--rows 1000000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from mlpipe.quality import fastcheck, gx


def make_frame(n: int, seed: int = 0) -> pd.DataFrame:
    """20 columns: 10 float, 4 int, 4 categorical, an id and a code; ~1% bad values."""
    rng = np.random.default_rng(seed)
    data: dict[str, Any] = {}
    for i in range(10):
        col = rng.normal(50, 10, n)
        col[rng.random(n) < 0.002] = np.nan
        col[rng.random(n) < 0.001] = 1e6  # outliers
        data[f"f{i}"] = col
    for i in range(4):
        data[f"i{i}"] = rng.integers(0, 100, n)
    for i in range(4):
        values = rng.choice(["a", "b", "c", "d"], n).astype(object)
        values[rng.random(n) < 0.001] = "zz"
        data[f"c{i}"] = pd.Series(values, dtype="str")
    data["id"] = pd.Series(np.arange(n).astype(str), dtype="str")
    codes = rng.choice(["AB-1", "CD-22", "EF-333"], n).astype(object)
    codes[rng.random(n) < 0.001] = "bad code"
    data["code"] = pd.Series(codes, dtype="str")
    return pd.DataFrame(data)


def make_suite(frame: pd.DataFrame) -> dict[str, Any]:
    """42 expectations of the common types."""
    e = lambda kind, **kw: {"type": f"expect_{kind}", "kwargs": kw}  # noqa: E731
    exps = [e("table_row_count_to_be_between", min_value=1, max_value=10 * len(frame)),
            e("table_columns_to_match_set", column_set=list(frame.columns))]  # fmt: skip
    exps += [e("column_values_to_not_be_null", column=c) for c in frame.columns]
    exps += [e("column_values_to_be_between", column=f"f{i}", min_value=0, max_value=100)
             for i in range(10)]  # fmt: skip
    exps += [e("column_values_to_be_between", column=f"i{i}", min_value=0, max_value=99)
             for i in range(4)]  # fmt: skip
    exps += [e("column_values_to_be_in_set", column=f"c{i}", value_set=["a", "b", "c", "d"])
             for i in range(4)]  # fmt: skip
    exps += [e("column_values_to_be_unique", column="id"),
             e("column_values_to_match_regex", column="code", regex=r"^[A-Z]{2}-\d+$")]  # fmt: skip
    return {"name": "bench", "expectations": exps}


def plain_pandas(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """The same checks written directly as vectorised pandas (the reference cost)."""
    out: dict[str, np.ndarray] = {}
    for c in frame.columns:
        out[f"null:{c}"] = np.flatnonzero(frame[c].isna().to_numpy())
    for i in range(10):
        col = frame[f"f{i}"]
        out[f"between:f{i}"] = np.flatnonzero((col.notna() & ~col.between(0, 100)).to_numpy())
    for i in range(4):
        out[f"between:i{i}"] = np.flatnonzero((~frame[f"i{i}"].between(0, 99)).to_numpy())
    for i in range(4):
        col = frame[f"c{i}"]
        bad = col.notna() & ~col.isin(["a", "b", "c", "d"])
        out[f"in_set:c{i}"] = np.flatnonzero(bad.to_numpy())
    out["unique:id"] = np.flatnonzero(frame["id"].duplicated(keep=False).to_numpy())
    code = frame["code"]
    matched = code.str.contains(r"^[A-Z]{2}-\d+$", regex=True, na=True)
    out["regex:code"] = np.flatnonzero(~matched.to_numpy(dtype=bool))
    return out


def best_of(repeat: int, fn: Callable[[], Any]) -> tuple[float, Any]:
    """Best wall time of ``repeat`` calls, and the last result."""
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    frame = make_frame(args.rows)
    suite = make_suite(frame)
    gx.run_suite(frame.head(100), suite)  # warm up imports and GX's registries

    t_pandas, reference = best_of(args.repeat, lambda: plain_pandas(frame))
    t_ours, ours = best_of(args.repeat, lambda: fastcheck.evaluate(frame, suite))
    t_gx, theirs = best_of(max(1, args.repeat - 1), lambda: gx.run_suite(frame, suite))

    bad_ref = set().union(*(set(v.tolist()) for v in reference.values()))
    bad_ours = {i for r in ours.results for i in r.unexpected_index}
    bad_gx = {i for r in theirs.results for i in r.unexpected_index}
    assert bad_ours == bad_ref == bad_gx, "engines disagree on failing rows"
    assert [r.success for r in ours.results] == [r.success for r in theirs.results]

    print(f"rows={len(frame):,} columns={frame.shape[1]} expectations={len(suite['expectations'])}"
          f" failing rows={len(bad_ours):,} (same in all three)")  # fmt: skip
    print(f"plain pandas           {t_pandas:7.3f} s   1.00x")
    print(f"mlpipe fast engine     {t_ours:7.3f} s   {t_ours / t_pandas:5.2f}x plain pandas")
    print(f"Great Expectations     {t_gx:7.3f} s   {t_gx / t_pandas:5.2f}x plain pandas "
          f"(COMPLETE results), {t_gx / t_ours:.1f}x ours")  # fmt: skip


if __name__ == "__main__":
    main()
