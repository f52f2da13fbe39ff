"""The import graph of tasks/ and plugins/: no cycle, and imports only downwards.

Every import counts, the ones inside functions included: a function-level
import is still a dependency, only a later one. docs/architecture.md draws the
same layers.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

LAYERS: tuple[tuple[str, ...], ...] = (
    ("tasks.core",),
    ("tasks.events",),
    ("tasks.generator",),
    ("tasks.datasets",),
    ("tasks.contracts",),
    ("tasks.learning",),
    ("tasks.reporting",),
    ("tasks.cli",),
    ("topo_airflow",),
)
"""Lowest first: a module may import its own package and the layers below it."""


def _modules() -> dict[str, Path]:
    found = {}
    for root, prefix in ((REPO / "tasks", "tasks"), (REPO / "plugins" / "topo_airflow", "topo_airflow")):
        for path in root.rglob("*.py"):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join([prefix, *parts])] = path
    return found


def _imports(path: Path, module: str, known: set[str]) -> set[str]:
    """The project modules ``module`` imports anywhere in its file."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from pkg import mod` depends on pkg.mod when that is a module.
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != module:
                out.add(name)
    return out


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {m: _imports(p, m, known) for m, p in modules.items()}


def _layer(module: str) -> int:
    for i, prefixes in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return i
    raise AssertionError(
        f"{module} is in no layer of tests/test_architecture.py: add it to LAYERS and docs/architecture.md"
    )


def _package(module: str) -> str:
    for prefixes in LAYERS:
        for p in prefixes:
            if module == p or module.startswith(p + "."):
                return p
    return module


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def test_no_import_cycle():
    cycles = find_cycles(_graph())
    assert not cycles, "import cycles (function-level imports included):\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_imports_run_downwards():
    wrong = []
    for module, imported in sorted(_graph().items()):
        for target in sorted(imported):
            same_package = _package(module) == _package(target)
            if not same_package and _layer(target) >= _layer(module):
                wrong.append(f"{module} imports {target} (layer {_layer(target)} >= {_layer(module)})")
    assert not wrong, "imports against the layer order of LAYERS:\n" + "\n".join(wrong)


def test_checker_sees_cycles_and_function_level_imports(tmp_path):
    """The checker itself: a cycle made only of a function-level import is found."""
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from pkg.b import x\n")
    (pkg / "b.py").write_text("def x():\n    from pkg import a\n    return a\n")
    known = {"pkg", "pkg.a", "pkg.b"}
    graph = {m: _imports(pkg / (m.split(".", 1)[1] + ".py" if "." in m else "__init__.py"), m, known) for m in known}
    assert graph["pkg.b"] == {"pkg.a"}
    assert find_cycles(graph) == [["pkg.a", "pkg.b"]]


@pytest.mark.parametrize("module", ["tasks.core.schema", "tasks.events.kernel", "topo_airflow.stages"])
def test_every_module_has_a_layer(module):
    assert module in _graph()
    _layer(module)
