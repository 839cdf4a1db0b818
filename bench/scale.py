"""Scale benchmark: `mlpipe train` against a bare script doing the same work, in one run.

The table is synthetic and generated in blocks (memory stays bounded at any size): 15 numeric
columns with 2% missing values, 5 string categoricals of 5, 10, 20, 35 and 50 levels and a
3-class target that depends on both. Both sides then train the same network (same seed,
initialisation, batch order and torch thread count) for ``--epochs`` epochs:

- ``mlpipe train`` runs the whole flow: validation, cleaning, split, features, network,
  baseline, evaluation, registration, smoke test, promotion and model card;
- the bare script reads the file, splits it with the same salted row hash, fits the same
  scikit-learn preprocessing, trains the network with a plain torch loop, fits the same
  baseline and scores the test rows. It is what someone would write by hand for one model.

Both use mlpipe's defaults (network, dropout, learning rate, automatic batch size, median
imputation, standard scaling, one-hot encoding with at most 20 levels, a logistic-regression
baseline); ``mlpipe train`` gets only the epochs, the seed and the thread count.

Each side runs in a child process measured alone (wall, CPU of the process tree, peak RSS of
its largest process); the script prints both and the ratios, and checks that the two reached
the same test accuracy and per-epoch training losses (up to 1M rows: one partition, so the
same batch order; above, mlpipe visits its partitions in a seeded order and only the
accuracies are compared).

Usage:
    .venv/bin/python bench/scale.py --rows 1000000 --epochs 3
    .venv/bin/python bench/scale.py --rows 50000000 --epochs 1 --only mlpipe
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
NUMERIC = [f"num_{i}" for i in range(15)]
LEVELS = [5, 10, 20, 35, 50]
CATEGORICAL = [f"cat_{i}" for i in range(len(LEVELS))]
TARGET = "label"
CLASSES = ["alpha", "beta", "gamma"]
BLOCK_ROWS = 500_000
PARTITION_ROWS = 1_000_000  # mlpipe's default dataset.partition_rows


def generate(path: Path, rows: int, seed: int = 0) -> None:
    """Write the synthetic table to ``path`` (Parquet, one row group per block)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    weights = rng.normal(size=(len(NUMERIC), len(CLASSES)))
    effects = [rng.normal(scale=0.8, size=(n, len(CLASSES))) for n in LEVELS]
    tmp = path.with_name(path.name + ".partial")
    writer = None
    try:
        for start in range(0, rows, BLOCK_ROWS):
            n = min(BLOCK_ROWS, rows - start)
            x = rng.normal(size=(n, len(NUMERIC)))
            codes = [rng.integers(0, k, n) for k in LEVELS]
            score = x @ weights + sum(e[c] for e, c in zip(effects, codes, strict=True))
            score += rng.gumbel(size=score.shape)
            x[rng.random(x.shape) < 0.02] = np.nan
            columns = {name: x[:, i] for i, name in enumerate(NUMERIC)}
            for name, k, c in zip(CATEGORICAL, LEVELS, codes, strict=True):
                columns[name] = np.array([f"{name}_v{j}" for j in range(k)])[c]
            columns[TARGET] = np.array(CLASSES)[score.argmax(axis=1)]
            table = pa.table(columns)
            if writer is None:
                writer = pq.ParquetWriter(tmp, table.schema)
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()
    os.replace(tmp, path)


def bare(data: Path, epochs: int, threads: int, seed: int, out: Path) -> None:
    """The hand-written reference: read, split, preprocess, train, baseline, score."""
    import pandas as pd
    import torch
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler
    from torch import nn
    from trainer_speed import bare_epoch  # bench/ is on the path: the same hand-written loop

    from mlpipe.config import SplitConfig, TrainConfig
    from mlpipe.data.split import SplitSpec, positions
    from mlpipe.learn.train import batch_size
    from mlpipe.serving.nets import build_network

    torch.set_num_threads(threads)
    frame = pd.read_parquet(data)
    frame = frame[frame[TARGET].notna()]
    cfg = SplitConfig()
    spec = SplitSpec(
        salt=cfg.salt,
        columns=sorted([*NUMERIC, *CATEGORICAL, TARGET]),
        test_size=cfg.test_size,
        val_size=cfg.val_size,
    )
    u = positions(frame, spec)
    test_mask = u < cfg.test_size
    val_mask = ~test_mask & (u < cfg.test_size + cfg.val_size)
    train, val, test = (frame[m] for m in (~test_mask & ~val_mask, val_mask, test_mask))
    prep = ColumnTransformer(
        [
            (
                "num",
                Pipeline([("impute", SimpleImputer(strategy="median")),
                          ("scale", StandardScaler())]),
                NUMERIC,
            ),
            (
                "cat",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="constant", fill_value="__missing__")),
                        ("encode", OneHotEncoder(handle_unknown="infrequent_if_exist",
                                                 max_categories=20, sparse_output=False)),
                    ]
                ),
                CATEGORICAL,
            ),
        ]
    )  # fmt: skip
    x_train = prep.fit_transform(train).astype(np.float32)
    x_val, x_test = (prep.transform(f).astype(np.float32) for f in (val, test))
    index = {c: i for i, c in enumerate(sorted(CLASSES))}
    y_train, y_val, y_test = (f[TARGET].map(index).to_numpy(np.int64) for f in (train, val, test))

    defaults = TrainConfig()
    batch = batch_size(defaults, len(x_train))
    torch.manual_seed(seed)
    net = build_network(
        {"architecture": "mlp", "task": "multiclass", "n_inputs": x_train.shape[1],
         "n_outputs": len(CLASSES), "hidden_layers": defaults.hidden_layers,
         "dropout": defaults.dropout, "image_shape": None}
    )  # fmt: skip
    optimiser = torch.optim.Adam(net.parameters(), lr=defaults.learning_rate)
    loss_fn = nn.CrossEntropyLoss()
    xt, yt = torch.from_numpy(x_train), torch.from_numpy(y_train)
    xv, yv = torch.from_numpy(x_val), torch.from_numpy(y_val)
    generator = torch.Generator().manual_seed(seed)
    losses = []
    best_loss, best_state = float("inf"), None
    for _ in range(epochs):
        losses.append(bare_epoch(net, optimiser, loss_fn, xt, yt, batch, generator))
        net.eval()
        with torch.no_grad():
            val_loss = float(loss_fn(net(xv), yv))
        if val_loss < best_loss - 1e-6:  # early stopping keeps the best epoch's weights
            best_loss, best_state = val_loss, copy.deepcopy(net.state_dict())
    net.load_state_dict(best_state)
    with torch.no_grad():
        accuracy = accuracy_score(y_test, net(torch.from_numpy(x_test)).argmax(1).numpy())
    LogisticRegression(max_iter=5000).fit(x_train, y_train)
    out.write_text(json.dumps({"accuracy": accuracy, "train_loss": losses}))


def mlpipe_command(data: Path, epochs: int, threads: int, seed: int, store: Path) -> list[str]:
    """`mlpipe train` on the file: defaults, except the epochs, the seed and the threads."""
    overrides = {
        "seed": seed,
        "train.max_epochs": epochs,
        "train.patience": epochs,
        "train.threads": threads,
        "tracking.uri": f"sqlite:///{store}",
    }
    sets = [arg for key, value in overrides.items() for arg in ("--set", f"{key}={value}")]
    mlpipe = str(Path(sys.executable).with_name("mlpipe"))
    return [mlpipe, "train", "--data", str(data), "--target", TARGET, *sets]


def measure(command: list[str], env: dict[str, str], cwd: Path) -> dict[str, float]:
    """Run ``command`` in a fresh child measuring only it: wall, CPU and peak RSS."""
    probe = (
        "import json,resource,subprocess,sys,time\n"
        "t=time.perf_counter();rc=subprocess.run(sys.argv[1:]).returncode\n"
        "u=resource.getrusage(resource.RUSAGE_CHILDREN)\n"
        "print(json.dumps({'rc':rc,'wall':time.perf_counter()-t,'cpu':u.ru_utime+u.ru_stime,"
        "'rss_mib':u.ru_maxrss/1024}),file=sys.stderr)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, *command], env=env, cwd=cwd, stderr=subprocess.PIPE, text=True
    )
    result = json.loads(done.stderr.strip().splitlines()[-1])
    if result["rc"] != 0:
        sys.exit(f"scale: command failed ({result['rc']}): {' '.join(command)}\n{done.stderr}")
    return result


def mlpipe_losses(store: Path) -> tuple[float, list[float]]:
    """Test accuracy and per-epoch training losses of the newest run in ``store``."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{store}")
    runs = client.search_runs(
        [e.experiment_id for e in client.search_experiments()],
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    run = runs[0]
    history = sorted(client.get_metric_history(run.info.run_id, "train/loss"), key=lambda m: m.step)
    return run.data.metrics["test/accuracy"], [m.value for m in history]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads for both sides")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--workdir", type=Path, default=Path(tempfile.gettempdir()) / "mlpipe-scale"
    )
    parser.add_argument("--only", choices=["both", "mlpipe", "bare"], default="both")
    parser.add_argument("--bare-child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    data = args.workdir / f"synthetic-{args.rows}.parquet"
    if args.bare_child:
        bare(data, args.epochs, args.threads, args.seed, args.bare_child)
        return
    args.workdir.mkdir(parents=True, exist_ok=True)
    if not data.exists():
        started = time.perf_counter()
        generate(data, args.rows, args.seed)
        print(f"generated {data} in {time.perf_counter() - started:.0f} s")
    size = data.stat().st_size / 2**20
    print(f"rows={args.rows:,} epochs={args.epochs} torch threads={args.threads} "
          f"file={size:.0f} MiB (Parquet)")  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    results: dict[str, dict[str, float]] = {}
    checks: dict[str, tuple[float, list[float]]] = {}
    if args.only in ("both", "bare"):
        out = args.workdir / "bare.json"
        command = [sys.executable, __file__, "--rows", str(args.rows), "--epochs",
                   str(args.epochs), "--threads", str(args.threads), "--seed", str(args.seed),
                   "--workdir", str(args.workdir), "--bare-child", str(out)]  # fmt: skip
        results["bare script"] = measure(command, env, args.workdir)
        got = json.loads(out.read_text())
        checks["bare script"] = (got["accuracy"], got["train_loss"])
    if args.only in ("both", "mlpipe"):
        store = args.workdir / f"mlflow-{os.getpid()}.db"
        # cwd: the run directories (runs/) go to the work folder, not the repository.
        results["mlpipe train"] = measure(
            mlpipe_command(data, args.epochs, args.threads, args.seed, store), env, args.workdir
        )
        checks["mlpipe train"] = mlpipe_losses(store)
    reference = results.get("bare script")
    print(f"{'':<14}{'wall s':>9}{'cpu s':>9}{'peak RSS MiB':>14}{'wall ratio':>12}"
          f"{'RSS ratio':>11}  test accuracy, train loss per epoch")  # fmt: skip
    for name, r in results.items():
        ratio = f"{r['wall'] / reference['wall']:.2f}x" if reference else "-"
        rss = f"{r['rss_mib'] / reference['rss_mib']:.2f}x" if reference else "-"
        accuracy, losses = checks[name]
        shown = ", ".join(f"{v:.5f}" for v in losses)
        print(f"{name:<14}{r['wall']:>9.1f}{r['cpu']:>9.1f}{r['rss_mib']:>14.0f}{ratio:>12}"
              f"{rss:>11}  {accuracy:.4f}, [{shown}]")  # fmt: skip
    if len(checks) == 2:
        (a1, l1), (a2, l2) = checks.values()
        if args.rows <= PARTITION_ROWS:
            same = abs(a1 - a2) < 1e-9 and np.allclose(l1, l2, rtol=1e-4)
            print("same test accuracy and losses: " + ("yes" if same else "NO"))
        else:
            # Several partitions: mlpipe visits them in a seeded order, so batches differ.
            print(f"test accuracy difference: {a2 - a1:+.4f} (batch orders differ)")


if __name__ == "__main__":
    main()
