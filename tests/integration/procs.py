"""Helpers for tests that start, signal and watch `mlpipe` processes."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from mlflow import MlflowClient


def launch(args: list[str], env: dict[str, str], cwd: Path, name: str) -> subprocess.Popen[str]:
    """Start ``mlpipe ARGS`` with stdout/stderr in ``cwd/<name>.out|.err``."""
    out = (cwd / f"{name}.out").open("w")
    err = (cwd / f"{name}.err").open("w")
    return subprocess.Popen([sys.executable, "-m", "mlpipe", *args], env=env, cwd=cwd,
                            stdout=out, stderr=err, text=True)  # fmt: skip


def wait_for_text(path: Path, pattern: str, timeout: float, proc: subprocess.Popen[str]) -> None:
    """Wait until ``pattern`` (regex) appears in a file; fail if the process ends first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and re.search(pattern, path.read_text(errors="replace")):
            return
        if proc.poll() is not None:
            raise AssertionError(f"process ended ({proc.returncode}) before {pattern!r}:\n"
                                 + path.read_text(errors="replace")[-3000:])  # fmt: skip
        time.sleep(0.1)
    raise AssertionError(f"{pattern!r} not seen within {timeout}s in {path}")


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (from /proc)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parents[int(stat.parent.name)] = int(fields[1])
        except (OSError, ValueError, IndexError):
            continue
    found, frontier = set(), {pid}
    while frontier:
        children = {p for p, ppid in parents.items() if ppid in frontier} - found
        found |= children
        frontier = children
    return found


def alive(pids: set[int]) -> set[int]:
    """The pids that still exist (and are not zombies)."""
    out = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            out.add(pid)
    return out


def wait_gone(pids: set[int], timeout: float) -> set[int]:
    """Wait until none of ``pids`` is alive; return those still alive at the deadline."""
    deadline = time.monotonic() + timeout
    while alive(pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    return alive(pids)


def history(client: MlflowClient, name: str) -> list[dict[str, Any]]:
    """The alias history recorded on a registered model, oldest first."""
    tags = client.get_registered_model(name).tags
    moves = [json.loads(v) for k, v in tags.items() if k.startswith("mlpipe.alias_move.")]
    return sorted(moves, key=lambda m: int(m["n"]))


def assert_one_consistent_champion(client: MlflowClient, name: str, versions: int) -> None:
    """Every version judged, one champion, every move compared with the champion it replaced."""
    found = client.search_model_versions(f"name='{name}'")
    assert len(found) == versions, [v.version for v in found]
    decisions = {str(v.version): v.tags.get("mlpipe.decision") for v in found}
    assert set(decisions.values()) <= {"promoted", "not promoted"}, f"left pending: {decisions}"
    model = client.get_registered_model(name)
    assert set(model.aliases) == {"champion"}, model.aliases
    moves = history(client, name)
    previous = None
    for move in moves:
        assert move["from"] == previous, f"a move skipped a champion: {moves}"
        assert move["compared_with"] == previous, f"judged against a stale champion: {moves}"
        previous = move["to"]
    assert previous == str(model.aliases["champion"]), "the history ends at the champion"
    promoted = {v for v, d in decisions.items() if d == "promoted"}
    assert promoted == {m["to"] for m in moves}, "every promotion is a recorded move"
    champions = {m["to"] for m in moves}
    for version in found:
        compared = version.tags.get("mlpipe.decision.compared_with", "none")
        assert compared == "none" or compared in champions, "compared with a real champion"
