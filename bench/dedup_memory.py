"""Memory of cross-partition de-duplication: the row hashes cleaning keeps (`clean.Seen`).

Cleaning remembers a 64-bit hash of every kept row, sorted, so that a row repeated in a later
partition is found. This feeds ``--partitions`` partitions of ``--rows`` random hashes to one
``Seen`` and prints the time and the process's peak RSS, to compare implementations of
``Seen.remember`` (run it on each commit; numbers in docs/benchmarks.md).

Usage:
    .venv/bin/python bench/dedup_memory.py --partitions 50 --rows 1000000
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mlpipe.data.clean import Seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--partitions", type=int, default=50)
    parser.add_argument("--rows", type=int, default=1_000_000, help="hashes per partition")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    seen = Seen()
    started = time.perf_counter()
    for _ in range(args.partitions):
        seen.remember(rng.integers(0, 2**63, args.rows, dtype=np.uint64))
    seconds = time.perf_counter() - started
    # Sorted, checked a block at a time (a whole-array check would set the peak itself).
    block = 1_000_000
    for at in range(0, len(seen.hashes) - 1, block):
        part = seen.hashes[at : at + block + 1]
        assert np.all(part[1:] >= part[:-1]), "the kept hashes are not sorted"
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"hashes={len(seen.hashes):,} partitions={args.partitions} "
          f"time={seconds:.1f} s peak RSS={peak:.0f} MiB")  # fmt: skip


if __name__ == "__main__":
    main()
