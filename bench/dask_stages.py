"""Data stages on the Dask engine: 1 worker process against 2 (and the local engine), one run.

The table is bench/scale.py's synthetic one (15 numeric columns with 2% missing, 5 string
categoricals, a 3-class target). It is loaded once (the load stage reads one source file in
order and is not mapped); then the data stages that map over partitions (validation,
cleaning, split, features: statistics and transform) run on each engine in turn, from the
same loaded partitions, each in a fresh run directory. The script prints each stage's wall
time per engine and the ratio 1 worker / 2 workers, and checks that every engine wrote the
same features.

Each engine's local cluster starts before its timer (``execution.workers`` processes with
one thread each); torch and scikit-learn run on one thread everywhere.

Usage:
    .venv/bin/python bench/dask_stages.py --rows 10000000
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before numpy and torch load

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "bench")]

STAGES = ("validation", "cleaning", "split", "features")


def _peak_rss_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_stages(config, loaded, run) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """The mapped data stages on ``run.execution``; wall seconds per stage."""
    from tasks.clean import clean_data
    from tasks.features import build_features
    from tasks.split import split_data
    from tasks.validate import validate_data

    times: dict[str, float] = {}
    t = time.perf_counter()
    validated = validate_data.fn(loaded, config.validation, run, None)
    times["validation"] = time.perf_counter() - t
    t = time.perf_counter()
    cleaned = clean_data.fn(validated, config.clean, config.split.key, run)
    times["cleaning"] = time.perf_counter() - t
    t = time.perf_counter()
    splits = split_data.fn(cleaned, config.split, run)
    times["split"] = time.perf_counter() - t
    t = time.perf_counter()
    build_features.fn(splits, config.features, run)
    times["features"] = time.perf_counter() - t
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument(
        "--workdir", type=Path, default=Path(tempfile.gettempdir()) / "mlpipe-scale"
    )
    parser.add_argument("--skip-local", action="store_true", help="only the Dask engines")
    args = parser.parse_args()

    import scale

    from mlpipe.config import ExecutionConfig, build_config
    from mlpipe.handoff import LoadedData, RunContext
    from mlpipe.io import engine, tracking
    from mlpipe.io.tables import iter_partitions
    from mlpipe.preflight import prepare

    args.workdir.mkdir(parents=True, exist_ok=True)
    data = args.workdir / f"synthetic-{args.rows}.parquet"
    if not data.exists():
        scale.generate(data, args.rows)
    base = args.workdir / "dask-stages"
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir()
    config = build_config(
        {"dataset": {"source": str(data), "target": scale.TARGET}, "runs_dir": str(base)}
    )
    tracking.configure(f"sqlite:///{base / 'mlflow.db'}")
    started = time.perf_counter()
    ingested, schema = prepare(config, base / "raw")
    loaded = LoadedData(
        path=ingested.path, dataset=schema, source=str(data), digest=ingested.digest,
        rows=ingested.rows,
    )  # fmt: skip
    print(f"{args.rows:,} rows loaded in {time.perf_counter() - started:.0f} s "
          f"({len(list(Path(ingested.path).glob('part-*')))} partitions)", flush=True)  # fmt: skip

    engines = {"1 worker": ExecutionConfig(engine="dask", workers=1),
               "2 workers": ExecutionConfig(engine="dask", workers=2)}  # fmt: skip
    if not args.skip_local:
        engines = {"local": ExecutionConfig(), **engines}
    results: dict[str, dict[str, float]] = {}
    features: dict[str, Path] = {}
    for name, execution in engines.items():
        folder = base / name.replace(" ", "-")
        folder.mkdir()
        with tracking.tracked_run("bench", f"dask-stages-{name}", {}) as run_id:
            run = RunContext(run_id=run_id, run_dir=str(folder), execution=execution)
            used = engine.engine_for(execution, folder)  # the cluster starts before the timer
            try:
                results[name] = run_stages(config, loaded, run)
                peak = ""
                if isinstance(used, engine.DaskEngine):
                    rss = used.client.run(_peak_rss_mib)
                    peak = f"; peak RSS per worker {max(rss.values()):.0f} MiB"
            finally:
                engine.shutdown()
        features[name] = folder / "features_train"
        shown = ", ".join(f"{k} {v:.1f} s" for k, v in results[name].items())
        print(f"{name}: {sum(results[name].values()):.1f} s ({shown}){peak}", flush=True)

    print(f"\n{'stage':<12}" + "".join(f"{n:>12}" for n in results) + f"{'1w / 2w':>10}")
    for stage in (*STAGES, "total"):
        row = {n: (sum(r.values()) if stage == "total" else r[stage]) for n, r in results.items()}
        ratio = row["1 worker"] / row["2 workers"]
        print(f"{stage:<12}" + "".join(f"{v:>11.1f}s" for v in row.values()) + f"{ratio:>9.2f}x")
    for name, path in features.items():  # partition by partition: memory stays bounded
        if name == "2 workers":
            continue
        pairs = zip(iter_partitions(features["2 workers"]), iter_partitions(path), strict=True)
        same = all(a.equals(b) for a, b in pairs)
        print(f"features of {name} equal those of 2 workers: {'yes' if same else 'NO'}")
    shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
