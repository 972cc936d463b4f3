"""The package's shape (docs/design.md): layers that import one way, no import circle (imports
inside functions counted), rooms that read in one sitting, and the model side importable
without Hydra or Optuna."""

import ast
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

from .conftest import ROOT

GAN = ROOT / "gan"
MAX_MODULE_LINES = 440  # "a few hundred lines": docs/design.md
MAX_FUNCTION_LINES = 80
# the training loop may stay one screen: a reader follows it top to bottom (docs/design.md)
LONG_ON_PURPOSE = {"gan/run/train.py:train"}


def test_layers_import_one_way():
    """pyproject.toml's import-linter contract: entry points -> report -> study -> run -> data
    -> nets -> config, checksum, files -> errors."""
    lint_imports = Path(sys.executable).parent / "lint-imports"  # import-linter's command
    result = subprocess.run(
        [str(lint_imports), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "1 kept, 0 broken" in result.stdout


def test_no_import_circle():
    """No module of gan/ reaches itself through imports, those inside functions included."""
    graph = grimp.build_graph("gan", include_external_packages=False)
    modules = sorted(graph.modules)
    imports = {m: graph.find_modules_directly_imported_by(m) for m in modules}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for other in sorted(imports[module]):
            if state.get(other) == 1:
                cycles.append(" -> ".join([*path[path.index(other) :], other]))
            elif other not in state:
                visit(other, [*path, other])
        state[module] = 2

    for module in modules:
        if module not in state:
            visit(module, [module])
    assert cycles == []


def python_files() -> list:
    return sorted(p for p in GAN.rglob("*.py"))


@pytest.mark.parametrize("path", python_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_rooms_read_in_one_sitting(path):
    """No module over MAX_MODULE_LINES, no function over MAX_FUNCTION_LINES lines."""
    text = path.read_text()
    assert text.count("\n") <= MAX_MODULE_LINES
    long = []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            lines = node.end_lineno - node.lineno + 1
            name = f"{path.relative_to(ROOT)}:{node.name}"
            if lines > MAX_FUNCTION_LINES and name not in LONG_ON_PURPOSE:
                long.append(f"{name} ({lines} lines)")
    assert long == []


@pytest.mark.parametrize(
    "code",
    ["import gan.models", "from gan.sample import load_generator", "import gan.nets.step"],
)
@pytest.mark.slow
def test_the_model_side_needs_neither_hydra_nor_optuna(code):
    """A program that only makes images from a generator.pt imports torch and gan/nets."""
    check = (
        f"import sys; {code}; "
        "print([m for m in sys.modules if m.split('.')[0] in ('hydra', 'optuna')])"
    )
    result = subprocess.run(
        [sys.executable, "-c", check], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
