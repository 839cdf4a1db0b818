"""Paired bootstrap of promotion: vectorised row terms vs one scikit-learn call per resample.

Both draw the same resamples (same seed, same blocks) and the script checks that they give the
same values before it prints the timing ratio. Every metric has a vectorised form: row terms for
accuracy, log loss, RMSE, MAE and R2, one bincount of confusion matrices for macro F1, sorted
ranks for ROC AUC. A second table times the vectorised path on test sets 10x and 100x larger
than ``--rows``: above ``MAX_RESAMPLE_ROWS`` the m-out-of-n bootstrap keeps its cost flat.
Usage: .venv/bin/python bench/bootstrap_speed.py [--rows 2000] [--resamples 1000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from mlpipe.learn.metrics import MAX_RESAMPLE_ROWS, RESAMPLE_BLOCK_CELLS, fast, metric_fn, resampled


def per_resample(name, y, out, n_classes, resamples, seed):
    """The reference: the metric function called once per resample (the fallback path)."""
    fn = metric_fn(name, n_classes)
    rng = np.random.default_rng(seed)
    n = len(y)
    block = max(1, RESAMPLE_BLOCK_CELLS // n)
    values, done = [], 0
    with fast():
        while done < resamples:
            idx = rng.integers(0, n, (min(block, resamples - done), n))
            values.extend(fn(y[rows], out[rows]) for rows in idx)
            done += len(idx)
    return np.array(values)


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--resamples", type=int, default=1000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    n, k = args.rows, 3
    labels = rng.integers(0, k, n)
    proba = rng.dirichlet(np.ones(k), n)
    proba[np.arange(n), labels] += 1.0
    proba /= proba.sum(axis=1, keepdims=True)
    values = rng.normal(size=n)
    cases = [
        ("accuracy", labels, proba, k),
        ("macro_f1", labels, proba, k),
        ("roc_auc", labels, proba, k),
        ("log_loss", labels, proba, k),
        ("rmse", values, values + rng.normal(scale=0.5, size=n), None),
        ("r2", values, values + rng.normal(scale=0.5, size=n), None),
    ]
    if n > MAX_RESAMPLE_ROWS:
        parser.error(f"--rows above {MAX_RESAMPLE_ROWS} take the m-out-of-n path: use fewer")
    print(f"rows={n:,} resamples={args.resamples:,} (one model)")
    for name, y, out, n_classes in cases:
        (fast_values,), t_fast = timed(
            lambda: resampled(name, y, [out], n_classes, args.resamples, 7)  # noqa: B023
        )
        slow_values, t_slow = timed(
            lambda: per_resample(name, y, out, n_classes, args.resamples, 7)  # noqa: B023
        )
        np.testing.assert_allclose(fast_values, slow_values, rtol=1e-9, atol=1e-12)
        print(
            f"{name:<9} per-resample {t_slow:7.3f} s   vectorised {t_fast:6.3f} s   "
            f"{t_slow / t_fast:6.1f}x faster (same values)"
        )
    print(f"vectorised path on larger test sets (at most {MAX_RESAMPLE_ROWS:,} rows per resample)")
    for name in ("accuracy", "roc_auc"):
        times = []
        for factor in (1, 10, 100):
            big = rng.integers(0, k, n * factor)
            p = rng.dirichlet(np.ones(k), n * factor)
            _, seconds = timed(lambda: resampled(name, big, [p], k, args.resamples, 7))  # noqa: B023
            times.append(seconds)
        sizes = [n * f for f in (1, 10, 100)]
        shown = "   ".join(f"{r:>9,} rows {t:6.3f} s" for r, t in zip(sizes, times, strict=True))
        print(f"{name:<9} {shown}   100x rows: {times[2] / times[0]:.1f}x time")


if __name__ == "__main__":
    main()
