"""Processes: inter-process locks, identity and children that die with their parent.

The identity of a process lets a later run recover runs whose process was killed.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def file_lock(path: str | Path, timeout: float = 300.0) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing) across processes.

    The kernel releases it when the holder dies, so a killed process never leaves it stuck.

    Raises:
        TimeoutError: Not acquired within ``timeout`` seconds.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout
    with target.open("a") as fh:
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"lock {target} held for more than {timeout:.0f}s") from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _start_ticks(pid: int) -> str | None:
    """Start time of a process in clock ticks since boot (Linux), to tell reused pids apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ")".
    return stat.rsplit(")", 1)[1].split()[19]


def owner(pid: int | None = None) -> str:
    """``host:pid:start`` of this process (or of ``pid``); stored on every run it opens."""
    pid = os.getpid() if pid is None else pid
    return f"{socket.gethostname()}:{pid}:{_start_ticks(pid) or '?'}"


def owner_alive(identity: str) -> bool | None:
    """Whether the process named by :func:`owner` still runs; ``None`` if it ran elsewhere."""
    try:
        host, pid_text, start = identity.rsplit(":", 2)
        pid = int(pid_text)
    except ValueError:
        return None
    if host != socket.gethostname():
        return None
    if not running(pid):
        return False
    return start == "?" or _start_ticks(pid) == start


def running(pid: int) -> bool:
    """Whether a process with this id exists on this machine (someone else's included)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def die_with_parent() -> None:
    """In a child process (``preexec_fn``): get SIGTERM when the parent dies, even by SIGKILL.

    So a killed ``mlpipe`` never leaves a server or a smoke test running behind it (Linux
    ``prctl(PR_SET_PDEATHSIG)``; a no-op elsewhere).
    """
    import ctypes
    import signal

    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
