"""The benchmark scripts keep working and report consistent numbers (no timing is asserted)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def run_bench(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``bench/<script>`` with ``args``; it must exit 0."""
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / script), *args],
        capture_output=True, text=True, cwd=REPO,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return done


@pytest.mark.slow
def test_validation_bench_runs_and_engines_agree():
    done = run_bench("validation_engines.py", "--rows", "5000", "--repeat", "1")
    header = re.search(r"rows=([\d,]+) columns=(\d+) expectations=(\d+) failing rows=([\d,]+) "
                       r"\(same in all three\)", done.stdout)  # fmt: skip
    assert header, done.stdout
    rows, columns, expectations, failing = (int(g.replace(",", "")) for g in header.groups())
    assert (rows, columns, expectations) == (5000, 20, 42)
    assert 0 < failing < rows, "the generated data has some bad rows, not all"
    ratios = dict(re.findall(r"^(plain pandas|mlpipe fast engine|Great Expectations)\s+"
                             r"[\d.]+ s\s+([\d.]+)x", done.stdout, flags=re.M))  # fmt: skip
    assert set(ratios) == {"plain pandas", "mlpipe fast engine", "Great Expectations"}
    assert float(ratios["plain pandas"]) == 1.0 and float(ratios["mlpipe fast engine"]) > 0


@pytest.mark.slow
def test_digits_bench_trains_through_the_entry_point():
    done = run_bench("digits_mlp_seeds.py", "--seeds", "1", "--max-epochs", "3")
    rows = [
        line for line in done.stdout.splitlines() if line.startswith("| ") and "variant" not in line
    ]
    assert len(rows) == 4, done.stdout
    accuracies = [float(x) for x in re.findall(r"\b0\.\d{4}\b", " ".join(rows))]
    assert all(0.5 < a <= 1.0 for a in accuracies), "three epochs already learn digits"


def test_bootstrap_bench_checks_both_paths_agree():
    done = run_bench("bootstrap_speed.py", "--rows", "300", "--resamples", "40")
    lines = re.findall(r"^(\w+)\s+per-resample .* \(same values\)$", done.stdout, flags=re.M)
    assert lines == ["accuracy", "log_loss", "rmse", "r2"], done.stdout
