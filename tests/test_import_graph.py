"""edgekit's packages import one another in one direction only, counting imports inside functions too.

An import inside a function that closes a circle between packages hides the circle instead of removing it: what
two packages share (file metadata, the progress callback, hashing, op-profile sums) belongs in a leaf module.
The graph is built from the source (every ``import``, at any depth) with one node per subpackage
(``edgekit.export``, ``edgekit.runtimes``, ...) and per top-level module (``edgekit.check``, ...).
"""

from __future__ import annotations

import ast
import importlib.util
import itertools
import subprocess
import sys
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")

ROOT = Path(__file__).resolve().parents[1]
PACKAGES: list[str] = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]

#: Modules that import nothing from edgekit but one another, so that any package may use them.
LEAVES = {"edgekit.errors", "edgekit.limits", "edgekit.progress", "edgekit.fileio", "edgekit.file_metadata",
          "edgekit.input_contract", "edgekit.op_profile", "edgekit.stop_signals", "edgekit.stdout_redirect"}
#: Libraries that take seconds to import: ``edgekit --help`` must not load them.
HEAVY = ("torch", "onnx", "onnxruntime", "ai_edge_litert", "tensorflow")


def _package_dirs() -> dict[str, Path]:
    return {name: Path(importlib.util.find_spec(name).submodule_search_locations[0]) for name in PACKAGES}


def _modules() -> dict[str, Path]:
    """Every edgekit module, by dotted name, with its source file."""
    found = {}
    for package, directory in _package_dirs().items():
        for file in sorted(directory.glob("*.py")):
            found[package if file.stem == "__init__" else f"{package}.{file.stem}"] = file
    return found


def _unit(module: str) -> str:
    """The node a module belongs to: its subpackage of edgekit (``edgekit.export`` for
    ``edgekit.export.tflite.writer``), or itself for a top-level module (``edgekit.check``)."""
    return ".".join(module.split(".")[:2])


def _imports(module: str, file: Path, modules: dict[str, Path]) -> list[tuple[str, int]]:
    """``(imported edgekit module, line)`` for every import statement in ``file``, at any depth."""
    is_package = file.stem == "__init__"
    found = []
    for node in ast.walk(ast.parse(file.read_text(), str(file))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")[: len(module.split(".")) - node.level + is_package]
                base = ".".join(anchor + ([base] if base else []))
            # ``from edgekit.export import ptq_steps`` imports the submodule ptq_steps
            found += [(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base, node.lineno)
                      for alias in node.names]
    return [(name, line) for name, line in dict.fromkeys(found) if name == "edgekit" or name.startswith("edgekit.")]


def _graph() -> dict[str, dict[str, list[str]]]:
    """``{node: {imported node: ["module:line", ...]}}`` over every edgekit module."""
    modules = _modules()
    graph: dict[str, dict[str, list[str]]] = {}
    for module, file in modules.items():
        source = _unit(module)
        edges = graph.setdefault(source, {})
        for target, line in _imports(module, file, modules):
            if _unit(target) != source:
                edges.setdefault(_unit(target), []).append(f"{module}:{line}")
    return graph


def _find_cycle(graph: dict[str, dict[str, list[str]]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, {})):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_packages_import_each_other_in_one_direction():
    graph = _graph()
    cycle = _find_cycle(graph)
    if cycle:
        steps = [f"{a} -> {b} ({', '.join(graph[a][b])})" for a, b in itertools.pairwise(cycle)]
        pytest.fail("import cycle between edgekit packages; move what they share into a leaf module:\n  "
                    + "\n  ".join(steps))


def test_the_cycle_check_sees_imports_inside_functions(tmp_path):
    """The check would have caught the cycles it guards against: a function-level import counts."""
    (tmp_path / "check.py").write_text("def f():\n    from edgekit.export.metadata import read_metadata\n")
    imports = _imports("edgekit.check", tmp_path / "check.py", {"edgekit.export.metadata": Path()})
    assert imports == [("edgekit.export.metadata", 2)]
    assert _find_cycle({"edgekit.check": {"edgekit.export": ["edgekit.check:2"]},
                        "edgekit.export": {"edgekit.check": ["edgekit.export.publish:14"]}}) == [
        "edgekit.check", "edgekit.export", "edgekit.check"]


def test_leaf_modules_import_only_other_leaves():
    modules = _modules()
    for leaf in sorted(LEAVES):
        outside = {name for name, _ in _imports(leaf, modules[leaf], modules)} - LEAVES
        assert not outside, f"{leaf} is a leaf but imports {sorted(outside)}"


def test_pyproject_lists_every_package():
    for package, directory in _package_dirs().items():
        for sub in sorted(p.parent.name for p in directory.glob("*/__init__.py")):
            assert f"{package}.{sub}" in PACKAGES, f"{package}.{sub} is missing from [tool.setuptools] packages"


def test_every_module_imports_in_a_fresh_interpreter_and_the_cli_loads_no_heavy_library():
    """Each module imported first in its own package order (sorted), in one fresh interpreter: a circle of
    module-level imports would fail here with a partially initialised module."""
    names = sorted(_modules())
    code = (
        "import importlib, sys\n"
        "import edgekit.cli\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
        f"for name in {names!r}:\n"
        "    importlib.import_module(name)\n"
        "print('imported', len(sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    heavy_at_cli, _ = out.stdout.splitlines()
    assert heavy_at_cli == "[]", f"`import edgekit.cli` loads {heavy_at_cli}; import them where they are used"
