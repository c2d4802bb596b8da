"""The layout shows the design (DESIGN §3): imports run one way, with no cycles and no private module
imported from another package."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "omasgan"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    """Every omasgan module and the omasgan modules it imports (at top level or inside functions)."""
    graph: dict[str, set[str]] = {}
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            found |= {t for t in targets if t in modules and t != name}
        graph[name] = found
    return graph


PACKAGES = {_module_name(p) for p in PACKAGE.rglob("__init__.py")}


def _package(module: str) -> str:
    """The package a module belongs to (a package belongs to itself)."""
    return module if module in PACKAGES else module.rsplit(".", 1)[0]


def test_no_private_module_is_imported_from_another_package():
    offenders = [
        (importer, imported)
        for importer, imported_set in _imports().items()
        for imported in imported_set
        if imported.rsplit(".", 1)[-1].startswith("_") and _package(imported) != _package(importer)
    ]
    assert not offenders, offenders


def test_module_imports_have_no_cycle():
    graph = _imports()
    # A package's __init__ re-exporting its own submodules is not a dependency of those submodules on it.
    edges = {m: {t for t in targets if not m.startswith(t + ".")} for m, targets in graph.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        stack.append(module)
        for target in sorted(edges.get(module, ())):
            if state.get(target) == 1:
                cycle = stack[stack.index(target):] + [target]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target)
        stack.pop()
        state[module] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module)
