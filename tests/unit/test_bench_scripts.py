"""The benchmark scripts keep working (small sizes; no timing is asserted)."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_validation_bench_runs_and_engines_agree():
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "validation_engines.py"), "--rows", "5000",
         "--repeat", "1"],
        capture_output=True, text=True, cwd=REPO,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "(same in all three)" in done.stdout and "mlpipe fast engine" in done.stdout
