"""Partition functions for the Dask tests, in a module workers can import without Prefect."""

from __future__ import annotations

import sys

import pandas as pd

from mlpipe.errors import DataError


def rows_and_sum(part: pd.DataFrame, column: str) -> tuple[int, float]:
    """A mergeable summary of one partition."""
    return len(part), float(part[column].sum())


def doubled(part: pd.DataFrame, column: str) -> tuple[tuple[pd.DataFrame], int]:
    """One column doubled; a partition where it is all missing is bad data."""
    if part[column].isna().all():
        raise DataError(f"column {column} is empty in a partition")
    out = part[[column]] * 2
    return (out,), len(out)


def modules(names: list[str]) -> dict[str, bool]:
    """Which of ``names`` the calling process has imported."""
    return {name: name in sys.modules for name in names}


def dies(part: pd.DataFrame) -> int:
    """Kill the worker process running it (a crash, an out-of-memory kill)."""
    import os

    os._exit(1)


def gang_member(rank: int, size: int, rendezvous: str, fail: int, how: str) -> int:
    """A gang member: rank ``fail`` dies (``how="die"``) or raises a TrainingError; the others
    wait in a collective for their peers until the gang is stopped."""
    import os

    import torch
    import torch.distributed as dist

    from mlpipe.errors import TrainingError

    if rank == fail:
        if how == "die":
            os._exit(1)
        raise TrainingError(f"rank {rank} refused")
    if how == "none":
        return rank
    dist.init_process_group("gloo", init_method=rendezvous, rank=rank, world_size=size)
    dist.all_reduce(torch.zeros(1))  # never completes: a peer is missing
    return rank
