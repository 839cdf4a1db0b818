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
    assert lines == ["accuracy", "macro_f1", "roc_auc", "log_loss", "rmse", "r2"], done.stdout
    larger = re.findall(r"^(\w+) .* 100x rows: [\d.]+x time$", done.stdout, flags=re.M)
    assert larger == ["accuracy", "roc_auc"], done.stdout


@pytest.mark.slow
def test_scale_bench_runs_both_sides_to_the_same_model(tmp_path: Path):
    done = run_bench("scale.py", "--rows", "3000", "--epochs", "2", "--workdir", str(tmp_path))
    rows = dict(re.findall(r"^(bare script|mlpipe train)\s+([\d.]+)\s", done.stdout, flags=re.M))
    assert set(rows) == {"bare script", "mlpipe train"}, done.stdout
    assert re.search(r"^mlpipe train .* [\d.]+x\s+[\d.]+x\s", done.stdout, flags=re.M)
    # Same split, preprocessing, initialisation and batch order: the same losses and accuracy.
    assert "same test accuracy and losses: yes" in done.stdout, done.stdout


@pytest.mark.slow
def test_trainer_bench_compares_the_same_training():
    done = run_bench("trainer_speed.py", "--rows", "4000", "--repeat", "1")
    found = re.findall(r"^(bare torch loop|mlpipe fit_network)\s+[\d.]+ s .* throughput ([\d.]+)x",
                       done.stdout, flags=re.M)  # fmt: skip
    assert [name for name, _ in found] == ["bare torch loop", "mlpipe fit_network"], done.stdout
    assert float(found[0][1]) == 1.0
    assert "same training loss: yes" in done.stdout, done.stdout


def test_dedup_memory_bench_keeps_every_hash_sorted():
    done = run_bench("dedup_memory.py", "--partitions", "3", "--rows", "1000")
    found = re.search(r"hashes=([\d,]+) partitions=3 time=[\d.]+ s peak RSS=\d+ MiB", done.stdout)
    assert found and found.group(1) == "3,000", done.stdout


@pytest.mark.slow
@pytest.mark.integration
def test_dask_stages_bench_runs_every_engine_to_the_same_features(tmp_path: Path):
    done = run_bench("dask_stages.py", "--rows", "4000", "--workdir", str(tmp_path))
    for stage in ("validation", "cleaning", "split", "features", "total"):
        assert re.search(rf"^{stage}\s+[\d.]+s\s+[\d.]+s\s+[\d.]+s\s+[\d.]+x$", done.stdout,
                         flags=re.M), done.stdout  # fmt: skip
    assert done.stdout.count("equal those of 2 workers: yes") == 2, done.stdout
    assert "peak RSS per worker" in done.stdout
