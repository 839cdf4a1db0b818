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
from dataclasses import dataclass, replace
from pathlib import Path

from mlpipe.errors import ConfigError
from mlpipe.io.processes import owner, owner_alive, running
from mlpipe.servers import bind_problem, free_port, port_free, wait_healthy

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


@dataclass(frozen=True)
class Record:
    """A started server as recorded: its process identity (``host:pid:start``) and address."""

    identity: str
    url: str
    host: str
    port: int

    @property
    def pid(self) -> int:
        """The pid, taken from the identity that ownership is checked on."""
        return int(self.identity.rsplit(":", 2)[1])

    def ours(self) -> bool:
        """Whether the recorded process still runs and is the one that was started."""
        return owner_alive(self.identity) is True


class BadRecordError(Exception):
    """A process record that is not one ``start`` wrote (edited, truncated)."""


def _read(state: Path, name: str) -> Record | None:
    """The record of ``name``; ``None`` when there is none.

    Raises:
        BadRecordError: The file exists but is not a record this module wrote.
    """
    path = _record(state, name)
    try:
        found = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        raise BadRecordError(f"{path} is unreadable ({type(err).__name__})") from None
    try:
        record = Record(
            identity=str(found["identity"]),
            url=str(found["url"]),
            host=str(found.get("host", "127.0.0.1")),
            port=int(found["port"]),
        )
        if record.pid <= 1:
            raise ValueError(record.pid)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError):
        raise BadRecordError(f"{path} is not a record mlpipe wrote") from None
    return record


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
    ports = [s.port for s in servers if s.port]
    if len(set(ports)) < len(ports):
        raise ConfigError(f"the servers need different ports, not {ports[0]} for both")
    todo = []
    for server in servers:
        try:
            record = _read(state, server.name)
        except BadRecordError as err:
            say(f"{server.name}: {err}; starting a new one")
            record = None
        if record and record.ours():
            moved = f"; not on {server.port}: stop it first" if server.port != record.port else ""
            say(f"{server.name}: already running at {record.url} (pid {record.pid}){moved}")
            continue
        if server.port == 0:  # any free port, chosen here so the health check knows it
            server = replace(server, port=free_port(server.host))
        problem = bind_problem(server.host, server.port)
        if problem:
            advice = ""
            if "in use" in problem:
                advice = (
                    f"; choose another port with {server.option} (make servers "
                    f"{server.name.upper()}_PORT=...)"
                )
            raise ConfigError(
                f"{server.name} cannot listen on {server.host}:{server.port}: {problem}{advice}"
            )
        todo.append(server)
    if not todo:
        return []
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
        if not running(pid):
            break
        time.sleep(0.2)
    _kill_group(pid)


def stop(names: list[str], state: Path, say: Callable[[str], None] = print) -> int:
    """Stop the servers ``start`` recorded in ``state`` that are still its own.

    A record whose process now belongs to another program is removed without signalling
    anything. When the recorded process is gone (killed), what is left of its session (the
    real server it had started) is stopped: no other process can hold that session's id
    while a member of it lives.

    Returns:
        How many servers were stopped.
    """
    stopped = 0
    for name in names:
        try:
            record = _read(state, name)
        except BadRecordError as err:
            say(f"{name}: {err}; removed it, nothing signalled")
            _record(state, name).unlink(missing_ok=True)
            continue
        if record is None:
            continue
        if record.ours():
            _stop_process(record.pid)
            done = f"stopped {name} (pid {record.pid})"
        elif not running(record.pid):
            _kill_group(record.pid)  # the leader was killed: its orphans, if any
            done = f"{name}: pid {record.pid} had exited; stopped what it left running, if any"
        else:
            say(
                f"{name}: pid {record.pid} is no longer the server that was started; "
                "nothing signalled"
            )
            _record(state, name).unlink(missing_ok=True)
            continue
        deadline = time.monotonic() + 10
        while not port_free(record.host, record.port) and time.monotonic() < deadline:
            time.sleep(0.2)
        _record(state, name).unlink(missing_ok=True)
        say(done)
        stopped += 1
    return stopped


def status(names: list[str], state: Path) -> dict[str, str | None]:
    """Each server's URL while the process ``start`` recorded still runs, else ``None``."""
    found: dict[str, str | None] = {}
    for name in names:
        try:
            record = _read(state, name)
        except BadRecordError:
            record = None
        found[name] = record.url if record and record.ours() else None
    return found
