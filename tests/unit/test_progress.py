import logging

import pandas as pd
import pytest

from mlpipe.io import progress
from mlpipe.io.tables import PartitionWriter, iter_partitions


def test_long_work_logs_how_far_it_got_and_short_work_stays_quiet(
    tmp_path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    with PartitionWriter(tmp_path / "t", rows=10) as writer:
        writer.write(pd.DataFrame({"a": range(35)}))
        path = writer.commit()
    caplog.set_level(logging.INFO, logger="mlpipe.progress")
    assert sum(len(p) for p in iter_partitions(path, progress="cleaning")) == 35
    assert not caplog.records, "under PROGRESS_SECONDS nothing is logged"
    monkeypatch.setattr(progress, "PROGRESS_SECONDS", 0.0)
    list(iter_partitions(path, progress="cleaning"))
    lines = [r.getMessage() for r in caplog.records]
    # A line after each of the first three partitions, none after the last (the stage's own
    # summary follows).
    assert [line.split(" (")[0] for line in lines] == [
        "cleaning: 1/4 partitions",
        "cleaning: 2/4 partitions",
        "cleaning: 3/4 partitions",
    ]
    assert lines[2].startswith("cleaning: 3/4 partitions (30 rows, ")


def test_a_progress_line_has_a_rate_and_the_time_left(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    clock = iter([100.0, 110.0])  # started at 100 s; the first step done at 110 s
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    monkeypatch.setattr(progress, "PROGRESS_SECONDS", 0.0)
    caplog.set_level(logging.INFO, logger="mlpipe.progress")
    work = progress.Progress("scoring", 4, "chunks")
    work.step(rows=5000)
    assert caplog.records[0].getMessage() == (
        "scoring: 1/4 chunks (5,000 rows, 10 s, 500 rows/s, about 30 s left)"
    )
