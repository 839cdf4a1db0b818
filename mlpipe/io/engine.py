"""Where partition-wise work runs: in this process, or mapped over a Dask cluster.

A stage's logic is a function of one partition: a frame in, and a mergeable summary (or a
frame and a summary) out. The engine feeds it a dataset's partitions, here one after another
or on the workers of a ``dask.distributed`` cluster, which read their partition from the run
directory and write their output partition beside it. Either way the results come back in
partition order, so the stage merges them into the same answer.

Workers only run mlpipe's library functions, never Prefect: a process that imports Prefect
without a server starts a temporary one of its own.

One engine per execution config lives for the run: :func:`engine_for` opens it on first use
(a local cluster starts then), :func:`shutdown` (called when the run closes) stops it.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar
from urllib.parse import urlsplit

import pandas as pd

from mlpipe.errors import MlpipeError
from mlpipe.io.progress import Progress
from mlpipe.io.tables import BucketWriter, PieceBucketWriter, partition_files, put, row_count
from mlpipe.servers import free_port

if TYPE_CHECKING:
    from mlpipe.config import ExecutionConfig

log = logging.getLogger("mlpipe.engine")
R = TypeVar("R")
CONNECT_SECONDS = 30  # connecting to an existing scheduler
WINDOW_PER_WORKER = 2  # partition tasks in flight per worker
SETTLE_SECONDS = 120  # after a failure, the wait for tasks already running
CALL_SECONDS = 120.0  # a call to the cluster (sending arguments, asking the workers) at most
POLL_SECONDS = 5.0  # how often a wait for a result checks that workers are left
NO_WORKERS_SECONDS = 60.0  # a cluster without workers this long fails the run
GANG_POLL_SECONDS = 0.5  # how often a gang's driver reports progress and checks its members
GANG_SETTLE_SECONDS = 3.0  # after a member fails, the wait for the others to say why
GANG_EXIT_SECONDS = 10.0  # a member that has answered exits by itself within this
_END = object()


def _bounded(call: Callable[[], R], seconds: float, what: str) -> R:
    """``call()``, or a TimeoutError after ``seconds``.

    A peer that accepts a connection and then never answers (a dead worker, something that
    is not a scheduler) must not hang the run. The call goes on in a daemon thread that the
    failing run leaves behind.
    """
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = call()
        except BaseException as err:  # handed to the caller below
            box["error"] = err

    thread = threading.Thread(target=target, daemon=True, name="mlpipe-dask-call")
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise TimeoutError(f"{what}: no answer within {seconds:.0f} s")
    if "error" in box:
        raise box["error"]
    return box["value"]


class Writer(Protocol):
    """A dataset writer that hands out where each output partition goes."""

    def reserve(self) -> Any:
        """Where the next input partition's output goes (see :func:`mlpipe.io.tables.put`)."""

    def adopt(self, rows: int) -> None:
        """Count rows written there."""


class EngineError(MlpipeError):
    """The cluster cannot be reached, cannot see the data, or lost its workers."""


def _summarise_file(job: Any, fn: Callable[..., Any], columns: Any, *shared: Any) -> Any:
    file, extra = job
    frame = pd.read_parquet(file, columns=columns)
    return fn(frame, *extra, *shared), len(frame)


def _rewrite_file(job: Any, fn: Callable[..., Any], columns: Any, *shared: Any) -> Any:
    source, extra, targets = job
    frames, summary = fn(pd.read_parquet(source, columns=columns), *extra, *shared)
    return summary, [put(f, t) for f, t in zip(frames, targets, strict=True)]


def _each(files: Sequence[Path], each: Sequence[Any] | None) -> list[tuple[Any, ...]]:
    """The arguments each partition's call gets before the shared ones."""
    if each is None:
        return [()] * len(files)
    if len(each) != len(files):
        raise ValueError(f"{len(each)} per-partition arguments for {len(files)} partitions")
    return [(arg,) for arg in each]


def starts(path: str | Path) -> list[int]:
    """The position of each partition's first row in the dataset (from the files' footers)."""
    files = partition_files(path)
    return [0, *itertools.accumulate(row_count(f) for f in files[:-1])] if files else []


class Engine:
    """Runs partition functions in this process, one partition after another."""

    name = "local"

    def summarise(
        self,
        fn: Callable[..., R],
        path: str | Path,
        *shared: Any,
        each: Sequence[Any] | None = None,
        columns: list[str] | None = None,
        progress: str | None = None,
    ) -> Iterator[R]:
        """``fn(partition, *shared)`` for each partition of ``path``, in partition order.

        ``each``: one more argument per partition, passed after the partition (its first
        row's position, from :func:`starts`, say).
        """
        files = partition_files(path)
        jobs = list(zip(files, _each(files, each), strict=True))
        done = Progress(progress, len(files)) if progress else None
        for summary, rows in self._map(_summarise_file, jobs, fn, columns, *shared):
            if done is not None:
                done.step(rows)
            yield summary

    def rewrite(
        self,
        fn: Callable[..., tuple[tuple[Any, ...], R]],
        path: str | Path,
        writers: Sequence[Writer],
        *shared: Any,
        each: Sequence[Any] | None = None,
        columns: list[str] | None = None,
        progress: str | None = None,
    ) -> Iterator[R]:
        """Write the frames of ``fn(partition, *shared)`` into ``writers``, one each.

        ``fn`` returns ``(frames, summary)``: one output per writer (a frame; a frame and a
        bucket per row for a bucket writer), which gets one output partition per input
        partition (none for no rows). The summaries come back in partition order. ``each``:
        as in :meth:`summarise`.
        """
        files = partition_files(path)
        jobs = [
            (file, arg, [w.reserve() for w in writers])
            for file, arg in zip(files, _each(files, each), strict=True)
        ]
        done = Progress(progress, len(files)) if progress else None
        for summary, rows in self._map(_rewrite_file, jobs, fn, columns, *shared):
            for writer, n in zip(writers, rows, strict=True):
                writer.adopt(n)
            if done is not None:
                done.step(sum(rows))
            yield summary

    def map(self, fn: Callable[..., R], items: Sequence[Any], *shared: Any) -> Iterator[R]:
        """``fn(item, *shared)`` for each item, in order."""
        return self._map(fn, items, *shared)

    def bucket_writer(self, path: str | Path, buckets: int) -> BucketWriter | PieceBucketWriter:
        """A writer that scatters rows over ``buckets`` partitions (rows and a bucket per row)."""
        return BucketWriter(path, buckets)

    def gang(
        self,
        fn: Callable[..., R],
        size: int,
        *args: Any,
        poll: Callable[[], None] | None = None,
    ) -> list[R]:
        """``fn(rank, size, rendezvous, *args)`` in ``size`` processes at once; results by rank.

        The members run at the same time and meet at ``rendezvous`` (``tcp://host:port``, a
        free port on the first member's host; a ``torch.distributed`` init method). Here:
        processes started from this one, stopped with it. ``poll`` is called about every
        :data:`GANG_POLL_SECONDS` while they run (to report progress).

        Raises:
            Exception: A member's own error (a :class:`MlpipeError` in preference to the
                errors of members whose peer failed first).
            EngineError: A member died without one (killed, out of memory).
        """
        import multiprocessing
        from multiprocessing.connection import wait

        self.check_gang(size)
        spawn = multiprocessing.get_context("spawn")
        rendezvous = f"tcp://127.0.0.1:{free_port('127.0.0.1')}"
        members: list[tuple[Any, Any]] = []
        results: dict[int, Any] = {}
        failures: dict[int, BaseException] = {}
        try:
            for rank in range(size):
                receive, send = spawn.Pipe(duplex=False)
                proc = spawn.Process(
                    target=_member,
                    args=(send, os.getpid(), fn, rank, size, rendezvous, *args),
                    name=f"mlpipe-rank-{rank}",
                    daemon=True,
                )
                proc.start()
                send.close()
                members.append((proc, receive))
            failed_at = None
            while len(results) + len(failures) < size:
                if failed_at is not None and time.monotonic() - failed_at > GANG_SETTLE_SECONDS:
                    break
                waiting = [
                    receive
                    for rank, (_, receive) in enumerate(members)
                    if rank not in results and rank not in failures
                ]
                wait(waiting, timeout=GANG_POLL_SECONDS)
                if poll is not None:
                    poll()
                for rank, (proc, receive) in enumerate(members):
                    if rank in results or rank in failures or not receive.poll():
                        continue
                    try:
                        ok, value = receive.recv()
                    except EOFError:  # exited without a word: killed
                        proc.join(5)
                        why = f"exit code {proc.exitcode}: killed, or out of memory?"
                        ok, value = False, EngineError(f"{_rank_name(rank, size)} died ({why})")
                    if ok:
                        results[rank] = value
                    else:
                        failures[rank] = value
                        failed_at = failed_at or time.monotonic()
        finally:
            for proc, receive in members:
                if len(results) == size:  # done: let it exit by itself
                    proc.join(GANG_EXIT_SECONDS)
                if proc.is_alive():
                    proc.terminate()
                proc.join(5)
                if proc.is_alive():
                    proc.kill()
                    proc.join()
                receive.close()
        if failures:
            raise _first_failure(failures, size)
        return [results[rank] for rank in range(size)]

    def check_gang(self, size: int) -> None:
        """Refuse a gang of more processes than this machine has cores (they would thrash).

        Raises:
            EngineError: Naming the limit.
        """
        cores = os.cpu_count() or 1
        if size > cores:
            raise EngineError(
                f"{size} training ranks as local processes on a machine with {cores} cores: at "
                f"most {cores} (train.workers), or run them on a Dask cluster"
            )

    def require(self, path: str | Path) -> None:
        """Check that the workers can read and write ``path`` (here: nothing to check)."""

    def close(self) -> None:
        """Release the engine's resources."""

    def _map(self, task: Callable[..., Any], items: Sequence[Any], *shared: Any) -> Iterator[Any]:
        for item in items:
            yield task(item, *shared)


class DaskEngine(Engine):
    """Maps partition functions over the workers of a ``dask.distributed`` cluster."""

    name = "dask"

    def __init__(self, client: Any, cluster: Any = None, where: str = "") -> None:
        """Use ``client``; ``cluster``: a local cluster this engine started and stops."""
        self.client, self.cluster, self.where = client, cluster, where
        self._seen: set[str] = set()

    def require(self, path: str | Path) -> None:
        """Raise :class:`EngineError` when a worker does not see the folder ``path``."""
        folder = str(Path(path).resolve())
        if folder in self._seen:
            return
        try:
            seen = _bounded(
                lambda: self.client.run(os.path.isdir, folder), CALL_SECONDS, "the workers"
            )
        except Exception as err:
            raise self._error(err) from None
        blind = sorted(worker for worker, ok in seen.items() if not ok)
        if not seen or blind:
            raise EngineError(
                f"Dask workers {', '.join(blind) or '(none)'} of {self.where} cannot see "
                f"{folder}: runs_dir must be on storage every worker mounts at the same path"
            )
        self._seen.add(folder)

    def bucket_writer(self, path: str | Path, buckets: int) -> BucketWriter | PieceBucketWriter:
        """Rows scattered by the workers into pieces, joined per bucket on commit."""
        return PieceBucketWriter(path, buckets, self)

    def gang(
        self,
        fn: Callable[..., R],
        size: int,
        *args: Any,
        poll: Callable[[], None] | None = None,
    ) -> list[R]:
        """As :meth:`Engine.gang`, one member on each of ``size`` workers of the cluster.

        Raises:
            EngineError: The cluster has fewer than ``size`` workers, or one of the members'
                workers left it.
        """
        try:
            workers = sorted(self.client.scheduler_info()["workers"])
        except Exception as err:
            raise self._error(err) from None
        if len(workers) < size:
            raise EngineError(
                f"{size} training ranks need {size} Dask workers (one rank each); "
                f"{self.where} has {len(workers)}"
            )
        chosen = workers[:size]
        host = urlsplit(chosen[0]).hostname or "127.0.0.1"
        try:
            port = _bounded(
                lambda: self.client.run(free_port, host, workers=[chosen[0]])[chosen[0]],
                CALL_SECONDS,
                "asking a worker for a free port",
            )
        except Exception as err:
            raise self._error(err) from None
        rendezvous = f"tcp://{host}:{port}"
        futures = [
            self.client.submit(
                fn,
                rank,
                size,
                rendezvous,
                *args,
                workers=[worker],
                allow_other_workers=False,
                pure=False,
            )
            for rank, worker in enumerate(chosen)
        ]
        failures: dict[int, BaseException] = {}
        try:
            failed_at = math.inf
            while True:
                _settle(futures, GANG_POLL_SECONDS, any_error=True)
                if poll is not None:
                    poll()
                for rank, future in enumerate(futures):
                    if rank not in failures and future.status == "error":
                        failures[rank] = future.exception()
                        failed_at = min(failed_at, time.monotonic())
                if failures:
                    unsettled = any(f.status == "pending" for f in futures)
                    if not unsettled or time.monotonic() - failed_at > GANG_SETTLE_SECONDS:
                        break
                    continue
                if all(f.status == "finished" for f in futures):
                    return [f.result() for f in futures]
                try:
                    present = set(self.client.scheduler_info()["workers"])
                except Exception as err:
                    raise self._error(err) from None
                gone = [rank for rank, worker in enumerate(chosen) if worker not in present]
                if gone or any(f.status in ("lost", "cancelled") for f in futures):
                    rank = gone[0] if gone else 0
                    raise EngineError(
                        f"Dask cluster {self.where}: the worker of "
                        f"{_rank_name(rank, size)} left (stopped or killed?)"
                    )
        finally:
            self.client.cancel([f for f in futures if f.status == "pending"])
        raise _first_failure(failures, size)

    def close(self) -> None:
        """Disconnect; stop the local cluster if this engine started it."""
        try:
            self.client.close()
        finally:
            if self.cluster is not None:
                self.cluster.close()

    def _map(self, task: Callable[..., Any], items: Sequence[Any], *shared: Any) -> Iterator[Any]:
        if not items:
            return
        try:
            # Large arguments (a fitted preprocessor, a schema) travel to each worker once.
            sent = [self._send(value) for value in shared]
            # A bounded window of tasks: results stream back in order, and after a failure
            # only the few in flight are left to finish.
            window = WINDOW_PER_WORKER * max(1, len(self.client.scheduler_info()["workers"]))
        except Exception as err:
            raise self._error(err) from None
        pending = iter(items)
        flight: deque[Any] = deque()

        def submit() -> None:
            item = next(pending, _END)
            if item is not _END:
                flight.append(self.client.submit(task, item, *sent, pure=False))

        try:
            for _ in range(window):
                submit()
            while flight:
                value = _result(flight.popleft(), self)
                submit()
                yield value
        finally:
            if flight:
                # Let the tasks in flight end before the caller cleans up (a worker must not
                # write into a folder the caller is deleting); a dead cluster gets a deadline.
                _settle(list(flight), SETTLE_SECONDS)
                self.client.cancel(list(flight))

    def _send(self, value: Any) -> Any:
        """A future of ``value`` held by every worker."""

        def scatter() -> Any:
            # In a list of one: scatter would send a list's or dict's items one by one.
            return self.client.scatter([value], broadcast=True, hash=False)[0]

        return _bounded(scatter, CALL_SECONDS, "sending the stage's arguments to the workers")

    def _error(self, err: BaseException) -> EngineError:
        from distributed.comm.core import CommClosedError

        if isinstance(err, CommClosedError):
            return EngineError(
                f"Dask cluster {self.where}: the connection to the scheduler closed "
                "(was it stopped or killed?)"
            )
        text = " ".join(str(err).split()) or type(err).__name__
        return EngineError(f"Dask cluster {self.where}: {text[:300]}")


def _result(future: Any, engine: DaskEngine) -> Any:
    """A future's value; the partition function's own errors are raised as they are.

    Raises:
        EngineError: The cluster lost the task (a killed worker, a closed connection), or
            had no worker at all for :data:`NO_WORKERS_SECONDS`.
    """
    from distributed import KilledWorker

    alone_since: float | None = None
    while True:
        try:
            return future.result(timeout=POLL_SECONDS)
        except TimeoutError:
            if future.done():  # the partition function's own TimeoutError
                raise
            # A task waits for a worker forever: say so when none is left.
            try:
                workers = len(engine.client.scheduler_info()["workers"])
            except Exception as err:
                raise engine._error(err) from None
            now = time.monotonic()
            alone_since = None if workers else (alone_since or now)
            if alone_since is not None and now - alone_since > NO_WORKERS_SECONDS:
                raise EngineError(
                    f"Dask cluster {engine.where}: no worker left for "
                    f"{NO_WORKERS_SECONDS:.0f} s (were they stopped or killed?)"
                ) from None
        except Exception as err:
            if future.status == "error" and not isinstance(err, KilledWorker):
                raise  # e.g. a DataError about the rows, as the local engine raises it
            raise engine._error(err) from None  # a lost worker, a closed connection


def _settle(futures: Sequence[Any], seconds: float, any_error: bool = False) -> None:
    """Wait until every future is done (or, ``any_error``: one failed), at most ``seconds``.

    Polled: ``distributed.wait`` needs a default client, and the engine's is not one.
    """
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if all(f.done() for f in futures):
            return
        if any_error and any(f.status == "error" for f in futures):
            return
        time.sleep(0.1)


def _rank_name(rank: int, size: int) -> str:
    return f"training rank {rank} of {size}"


def _member(
    send: Any, parent: int, fn: Callable[..., Any], rank: int, size: int, *args: Any
) -> None:
    """A gang member's process: run ``fn``; send ``(True, value)`` or ``(False, error)``."""
    threading.Thread(target=_exit_with, args=(parent,), daemon=True).start()
    try:
        outcome: tuple[bool, Any] = (True, fn(rank, size, *args))
    except BaseException as err:  # reported to the parent, which decides
        outcome = (False, err)
    try:
        send.send(outcome)
    except OSError:  # the parent is gone (killed): nobody to tell
        os._exit(1)
    except Exception:  # an error that does not pickle: its text
        error = outcome[1]
        with contextlib.suppress(OSError):
            send.send((False, RuntimeError(f"{type(error).__name__}: {error}")))


def _exit_with(parent: int) -> None:
    """Exit when ``parent`` is gone (a kill -9 of the run must not leave ranks training)."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)


def _first_failure(failures: dict[int, BaseException], size: int) -> BaseException:
    """The error that explains a failed gang: mlpipe's own first, then the lowest rank's.

    A member whose peer died fails too, with a connection error that says less.
    """
    rank = min(failures, key=lambda r: (not isinstance(failures[r], MlpipeError), r))
    error = failures[rank]
    if isinstance(error, MlpipeError):
        return error
    text = " ".join(str(error).split())[:300] or type(error).__name__
    return EngineError(f"{_rank_name(rank, size)} failed: {text}")


LOCAL = Engine()
_lock = threading.Lock()
_open: dict[tuple[str | None, int], DaskEngine] = {}


def engine_for(cfg: ExecutionConfig, folder: str | Path) -> Engine:
    """The engine of ``cfg`` for data under ``folder`` (the run directory).

    A Dask engine is opened on first use and kept until :func:`shutdown`.

    Raises:
        EngineError: The scheduler at ``cfg.address`` cannot be reached, or its workers
            cannot see ``folder``.
    """
    if cfg.engine == "local":
        return LOCAL
    key = (cfg.address, cfg.workers)
    with _lock:
        if key not in _open:
            _open[key] = _connect(cfg)
        engine = _open[key]
    engine.require(folder)
    return engine


def check_ranks(cfg: ExecutionConfig, ranks: int) -> None:
    """Refuse more training ranks than the scheduler at ``cfg.address`` has workers.

    Checked before the data is read, on the connection the run then uses.

    Raises:
        EngineError: Too few workers, or the scheduler cannot be reached.
    """
    if cfg.engine != "dask" or not cfg.address or ranks <= 1:
        return
    key = (cfg.address, cfg.workers)
    with _lock:
        if key not in _open:
            _open[key] = _connect(cfg)
        engine = _open[key]
    assert isinstance(engine, DaskEngine)
    try:
        workers = len(engine.client.scheduler_info()["workers"])
    except Exception as err:
        raise engine._error(err) from None
    if workers < ranks:
        raise EngineError(
            f"train.workers={ranks} ranks need {ranks} Dask workers (one rank each); "
            f"{cfg.address} has {workers}"
        )


def _connect(cfg: ExecutionConfig) -> DaskEngine:
    from distributed import Client, LocalCluster

    # The scheduler and nannies of a local cluster run in this process: their chatter (a
    # worker restarted, its tracebacks) is not the run's, which reports a failure itself.
    logging.getLogger("distributed").setLevel(logging.CRITICAL)
    # A lost connection is the run's error, said once by mlpipe: not a client traceback.
    for name in ("distributed.client", "distributed.comm", "distributed.core"):
        logging.getLogger(name).setLevel(logging.CRITICAL)

    if cfg.address:
        try:
            client = _bounded(
                lambda: Client(cfg.address, timeout=CONNECT_SECONDS, set_as_default=False),
                CONNECT_SECONDS + 10,
                "no Dask scheduler answered",
            )
        except Exception as err:
            text = " ".join(str(err).split()) or type(err).__name__
            raise EngineError(
                f"cannot reach the Dask scheduler {cfg.address}: {text[:300]}"
            ) from None
        try:
            _bounded(
                lambda: client.wait_for_workers(1, timeout=CONNECT_SECONDS),
                CONNECT_SECONDS + 10,
                "waiting for workers",
            )
        except Exception:
            client.close()
            raise EngineError(
                f"the Dask scheduler {cfg.address} has no worker (waited {CONNECT_SECONDS} s): "
                "start some (`dask worker ADDRESS`)"
            ) from None
        log.info("dask: connected to %s", cfg.address)
        return DaskEngine(client, where=cfg.address)
    cluster = LocalCluster(
        n_workers=cfg.workers,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        scheduler_port=0,
        # Its HTTP endpoints (health, metrics) on a free loopback port: the default 8787
        # is taken as soon as two runs start clusters at once.
        dashboard_address="127.0.0.1:0",
        # A partition function's error is the run's, said once by mlpipe: not also a
        # "Compute Failed" block from each worker it failed on.
        silence_logs=logging.CRITICAL,
    )
    client = Client(cluster, set_as_default=False)
    log.info("dask: started a local cluster (%d workers)", cfg.workers)
    return DaskEngine(client, cluster, where=f"(local, {cfg.workers} workers)")


def shutdown() -> None:
    """Stop every engine opened for this run."""
    with _lock:
        engines = list(_open.values())
        _open.clear()
    for engine in engines:
        try:
            engine.close()
        except Exception as err:  # closing must not hide the run's own outcome
            log.warning("dask: closing %s failed: %s", engine.where, err)
