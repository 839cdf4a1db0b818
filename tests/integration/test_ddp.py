"""Distributed training (DistributedDataParallel, gloo on CPU) in local processes: the same
training as one process, and a rank that fails fails the run in one line with nothing left."""

from __future__ import annotations

import multiprocessing
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from mlpipe.config import TrainConfig
from mlpipe.errors import TrainingError
from mlpipe.io.engine import LOCAL, EngineError
from mlpipe.io.tables import PartitionWriter
from mlpipe.learn.distributed import fit_network_ranks
from mlpipe.learn.train import TARGET_COLUMN, Rows, fit_network
from tests.integration.dask_fns import gang_member

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _on_disk(folder: Path, x: np.ndarray, y: np.ndarray, parts: int) -> Rows:
    with PartitionWriter(folder) as writer:
        for rows in np.array_split(np.arange(len(y)), parts):
            out = pd.DataFrame(x[rows], columns=[f"f{i}" for i in range(x.shape[1])])
            out[TARGET_COLUMN] = y[rows]
            writer.write(out)
        return Rows.on_disk(writer.commit())


def _spec(task: str, outputs: int) -> dict:
    return {
        "architecture": "mlp",
        "task": task,
        "n_inputs": 6,
        "n_outputs": outputs,
        "hidden_layers": [16],
        "dropout": 0.0,
        "image_shape": None,
    }


def _same_training(one: tuple, two: tuple) -> None:
    (net1, history1, best1), (net2, history2, best2) = one, two
    assert best1 == best2 and len(history1) == len(history2)
    for a, b in zip(history1, history2, strict=True):
        assert b == pytest.approx(a, rel=1e-5, abs=1e-7)
    for (name, w1), w2 in zip(net1.state_dict().items(), net2.state_dict().values(), strict=True):
        torch.testing.assert_close(w2, w1, rtol=1e-4, atol=1e-5, msg=name)


def test_two_ranks_train_what_one_process_trains(tmp_path: Path):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(1300, 6)).astype(np.float32)
    y = ((x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0.5)).astype(np.int64)
    # Several training partitions, the last batch of each smaller than the others (and of
    # 1300 // 3 rows: shares of 2 ranks differ by a row); validation in 2 partitions.
    train = _on_disk(tmp_path / "train", x[:1000], y[:1000], 3)
    val = _on_disk(tmp_path / "val", x[1000:], y[1000:], 2)
    cfg = TrainConfig(max_epochs=6, patience=2, hidden_layers=[16], dropout=0.0, batch_size=50)
    spec = _spec("multiclass", 3)
    seen: list[dict[str, float]] = []
    temporary = set(Path(tempfile.gettempdir()).glob("mlpipe-ranks-*"))
    one = fit_network(train, val, spec, cfg, seed=5)
    two = fit_network_ranks(LOCAL, 2, train, val, spec, cfg, 5, seen.append, folder=tmp_path)
    assert set(Path(tempfile.gettempdir()).glob("mlpipe-ranks-*")) == temporary
    _same_training(one, two)
    assert seen == two[1], "every epoch reported to the driver as it ended"
    assert not list(tmp_path.glob("epochs*")), "the epochs file is removed"
    assert not multiprocessing.active_children()


def test_two_ranks_train_a_regression_on_one_in_memory_partition():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(500, 6)).astype(np.float32)
    y = (x @ np.arange(6) + rng.normal(size=500)).astype(np.float32)
    train, val = Rows.of(x[:399], y[:399]), Rows.of(x[399:], y[399:])
    # 399 rows in batches of 64: the last batch (15 rows) gives the ranks shares of 8 and 7.
    cfg = TrainConfig(max_epochs=4, hidden_layers=[16], dropout=0.0)
    spec = _spec("regression", 1)
    moments = (float(y[:399].mean()), float(y[:399].std()))
    one = fit_network(train, val, spec, cfg, seed=1, standardise=moments)
    two = fit_network_ranks(LOCAL, 2, train, val, spec, cfg, 1, standardise=moments)
    _same_training(one, two)


def test_a_rank_that_dies_fails_the_gang_in_one_line_and_stops_the_others():
    started = time.monotonic()
    with pytest.raises(EngineError, match=r"^training rank 1 of 2 died \(exit code 1") as caught:
        LOCAL.gang(gang_member, 2, 1, "die")
    assert "\n" not in str(caught.value)
    assert time.monotonic() - started < 60, "the waiting peers were stopped, not waited for"
    assert not multiprocessing.active_children(), "no rank outlives the gang"


def test_a_ranks_own_error_comes_back_as_itself():
    with pytest.raises(TrainingError, match="rank 0 refused"):
        LOCAL.gang(gang_member, 2, 0, "raise")
    assert LOCAL.gang(gang_member, 2, -1, "none") == [0, 1]


def test_diverging_ranks_fail_in_one_line_like_one_process():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 6)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    cfg = TrainConfig(max_epochs=20, learning_rate=1e12)
    spec = {**_spec("binary", 2), "hidden_layers": [16, 8]}
    with pytest.raises(TrainingError, match=r"^training diverged at epoch \d+ [^\n]*$"):
        fit_network_ranks(
            LOCAL, 2, Rows.of(x[:200], y[:200]), Rows.of(x[200:], y[200:]), spec, cfg, 0
        )


def test_more_local_ranks_than_cores_are_refused_before_anything_starts(
    capsys: pytest.CaptureFixture[str], isolated_workdir: Path
):
    import os

    from mlpipe.cli import main

    cores = os.cpu_count() or 1
    with pytest.raises(EngineError, match=rf"^{cores + 1} training ranks .* at most {cores} "):
        LOCAL.gang(gang_member, cores + 1, -1, "none")
    assert not multiprocessing.active_children()
    assert main(["train", "--dataset", "digits", "--set", "train.workers=999"]) == 1
    err = capsys.readouterr().err
    assert f"999 training ranks as local processes on a machine with {cores} cores" in err
    assert not list(isolated_workdir.iterdir()), "refused before the load: nothing written"
