"""The layers stay layers: who may import whom, checked on the source (AST), not by convention."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# The one module of the library that may talk to Prefect (and run the flows).
PREFECT_ADAPTER = "mlpipe/orchestration.py"
# What a registered model may import besides itself: the runtime libraries it pins.
SERVING_ALLOWED = {"numpy", "pandas", "torch", "sklearn", "joblib", "pydantic", "mlflow"}


def imports(path: Path) -> list[tuple[str, int]]:
    """Top-level module names a file imports (relative imports as ``.``), with line numbers."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append(("." if node.level else str(node.module), node.lineno))
    return found


def files(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


@pytest.mark.parametrize("path", files("mlpipe"), ids=rel)
def test_the_library_never_imports_prefect_flows_or_tasks(path: Path):
    if rel(path) == PREFECT_ADAPTER:
        return
    bad = [(m, n) for m, n in imports(path) if m.split(".")[0] in {"prefect", "flows", "tasks"}]
    if rel(path) == "mlpipe/cli.py":
        # The CLI reaches Prefect only through the adapter.
        assert all(m.split(".")[0] != "prefect" for m, _ in bad), bad
        assert not bad, f"the CLI imports {bad}: go through {PREFECT_ADAPTER}"
    assert not bad, f"{rel(path)} imports {bad}"


@pytest.mark.parametrize("path", files("mlpipe/serving"), ids=rel)
def test_serving_imports_only_itself_and_runtime_libraries(path: Path):
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    for module, line in imports(path):
        top = module.split(".")[0]
        if module == "." or top in stdlib or top in SERVING_ALLOWED:
            continue
        if path.name == "model_code.py" and top == "mlpipe_serving":
            continue  # the serving package's name inside a model
        pytest.fail(f"{rel(path)}:{line} imports {module}: a model must not depend on it")


@pytest.mark.parametrize("path", files("tasks"), ids=rel)
def test_a_stage_never_imports_another_stage(path: Path):
    bad = [(m, n) for m, n in imports(path) if m.split(".")[0] == "tasks"]
    assert not bad, f"{rel(path)} imports {bad}: hand-off types live in mlpipe.handoff"


@pytest.mark.parametrize("path", files("flows"), ids=rel)
def test_flows_only_wire(path: Path):
    allowed = {"prefect", "pydantic", "tasks", "flows", "__future__", "pathlib"}
    allowed_mlpipe = {"mlpipe.config", "mlpipe.handoff", "mlpipe.orchestration", "mlpipe.io.runs",
                      "mlpipe.io.tracking", "mlpipe.data.datasets", "mlpipe.serving.predictor",
                      "mlpipe.serving.schema",
                      "mlpipe.io"}  # fmt: skip
    for module, line in imports(path):
        if module.split(".")[0] in allowed or module in allowed_mlpipe:
            continue
        pytest.fail(f"{rel(path)}:{line} imports {module}: flows only wire tasks")


def test_no_model_carries_a_module_named_tasks_or_mlpipe():
    from mlpipe.packaging import SERVING_DIR, SERVING_PACKAGE

    assert SERVING_PACKAGE not in {"tasks", "mlpipe"}
    assert SERVING_DIR == ROOT / "mlpipe" / "serving"


def test_nothing_happens_at_import(tmp_path: Path):
    import subprocess

    code = (
        "import logging, mlflow, mlpipe.cli, mlpipe.orchestration, mlpipe.io.tracking\n"
        "import flows.training, flows.batch_predict, flows.monitoring\n"
        "from mlflow.tracking._tracking_service import utils\n"
        "print(utils._tracking_uri is None, logging.getLogger('mlpipe').handlers == [])\n"
    )
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=work,
                         env=env, check=True).stdout.split()  # fmt: skip
    assert out == ["True", "True"], "no tracking URI set, no logging configured at import"
    assert list(work.iterdir()) == [], "no files or folders made in the working directory"
