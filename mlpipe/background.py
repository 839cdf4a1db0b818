"""Local Prefect and MLflow servers in the background (``mlpipe servers``, ``make servers``).

Each server runs as ``mlpipe server <name>`` in its own session, logging to
``<state>/<name>.log``; ``<state>/<name>.json`` records who it is (pid and process start time),
so ``stop`` only ever signals a process this command started and that is still that process.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mlpipe.errors import ConfigError
from mlpipe.io.processes import owner, owner_alive
from mlpipe.servers import bind_problem, port_free, wait_healthy

LOG_TAIL_LINES = 25
# The server command forwards SIGTERM and gives the real server 20 s before killing it.
STOP_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class Server:
    """A server to run: its name (``mlpipe server <name>``), where it listens, how to probe it."""

    name: str
    host: str
    port: int

    @property
    def url(self) -> str:
        """Its base URL."""
        return f"http://{self.host}:{self.port}"

    @property
    def health_url(self) -> str:
        """What answers 200 once it serves."""
        return f"{self.url}/api/health" if self.name == "prefect" else f"{self.url}/health"

    @property
    def option(self) -> str:
        """The ``mlpipe servers`` option that sets its port."""
        return f"--{self.name}-port"


def _record(state: Path, name: str) -> Path:
    return state / f"{name}.json"


def _read(state: Path, name: str) -> dict | None:
    try:
        found = json.loads(_record(state, name).read_text())
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) else None


def _ours(record: dict) -> bool:
    """Whether the recorded process still runs and is the one that was started."""
    return owner_alive(str(record.get("identity", ""))) is True


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


def _kill_group(pid: int) -> None:
    """SIGKILL what is left of a server's session (its leader was checked to be ours)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def start(
    servers: list[Server],
    state: Path,
    timeout: float,
    say: Callable[[str], None] = print,
) -> list[Server]:
    """Start the servers not already running, and wait until every one answers its health check.

    Returns:
        The servers this call started.

    Raises:
        ConfigError: a port is taken, or a server did not come up within ``timeout`` seconds
            (its log tail is printed to stderr first; every server this call started is stopped).
    """
    todo = []
    for server in servers:
        record = _read(state, server.name)
        if record and _ours(record):
            say(f"{server.name}: already running at {record['url']} (pid {record['pid']})")
            continue
        problem = bind_problem(server.host, server.port)
        if problem:
            raise ConfigError(
                f"{server.name} cannot listen on {server.host}:{server.port}: {problem}; "
                f"choose another port with {server.option} (make servers "
                f"{server.name.upper()}_PORT=...)"
            )
        todo.append(server)
    state.mkdir(parents=True, exist_ok=True)
    started: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for server in todo:
            log = state / f"{server.name}.log"
            cmd = [sys.executable, "-m", "mlpipe", "server", server.name]
            cmd += ["--host", server.host, "--port", str(server.port)]
            with log.open("wb") as out:
                # Its own session: it outlives this command, and `stop` can end all of it.
                proc = subprocess.Popen(
                    cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
                )
            started[server.name] = proc
            _record(state, server.name).write_text(
                json.dumps(
                    {
                        "identity": owner(proc.pid),
                        "pid": proc.pid,
                        "url": server.url,
                        "host": server.host,
                        "port": server.port,
                        "log": str(log),
                    }
                )
            )
        say(f"waiting for {', '.join(s.name for s in todo)} (at most {timeout:.0f} s)")
        deadline = time.monotonic() + timeout
        for server in todo:
            proc = started[server.name]
            while not wait_healthy(server.health_url, timeout=1.0):
                if proc.poll() is not None or time.monotonic() > deadline:
                    why = (
                        f"exited with code {proc.returncode}"
                        if proc.poll() is not None
                        else f"did not answer {server.health_url} within {timeout:.0f} s"
                    )
                    log = state / f"{server.name}.log"
                    print(f"--- last lines of {log} ---\n{_tail(log)}\n---", file=sys.stderr)
                    raise ConfigError(
                        f"{server.name} did not come up on {server.host}:{server.port}: {why} "
                        f"(log above and in {log})"
                    )
            say(f"{server.name}: {server.url} (pid {proc.pid}, log {state / server.name}.log)")
    except BaseException:
        for name, proc in started.items():
            _stop_process(proc.pid)
            _record(state, name).unlink(missing_ok=True)
        raise
    return todo


def _stop_process(pid: int) -> None:
    """SIGTERM a server command (it stops the real server), then SIGKILL what is left."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # reap it when it is our own child
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    _kill_group(pid)


def stop(names: list[str], state: Path, say: Callable[[str], None] = print) -> int:
    """Stop the servers ``start`` recorded in ``state`` that are still its own.

    A record whose process is gone, or whose pid now belongs to another program, is removed
    without signalling anything.

    Returns:
        How many servers were stopped.
    """
    stopped = 0
    for name in names:
        record = _read(state, name)
        if record is None:
            continue
        pid = int(record.get("pid", 0))
        if not _ours(record):
            say(f"{name}: pid {pid} is no longer the server that was started; nothing signalled")
            _record(state, name).unlink(missing_ok=True)
            continue
        _stop_process(pid)
        host, port = str(record.get("host", "127.0.0.1")), int(record.get("port", 0))
        deadline = time.monotonic() + 10
        while port and not port_free(host, port) and time.monotonic() < deadline:
            time.sleep(0.2)
        _record(state, name).unlink(missing_ok=True)
        say(f"stopped {name} (pid {pid})")
        stopped += 1
    return stopped


def status(names: list[str], state: Path) -> dict[str, str | None]:
    """Each server's URL while the process ``start`` recorded still runs, else ``None``."""
    found: dict[str, str | None] = {}
    for name in names:
        record = _read(state, name)
        found[name] = str(record["url"]) if record and _ours(record) else None
    return found
