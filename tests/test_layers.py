"""The package's shape: no import circle, small modules, no private name imported from another module."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "ambiseg_metrics"
MAX_LINES = 400
#: Modules allowed over MAX_LINES, with the reason (to be split, not to grow).
TOO_LONG_FOR_NOW = {
    "core/_kernels.py": "split pending: pack, Gram, vote-table, assignment and readout kernels share private "
    "compiled helpers (_pack_words, _count_tile, _popcount, the task-range pool, _CACHE); a split needs them "
    "public in one helper module",
}


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(name: str, path: Path, top_level_only: bool):
    """(module imported from, [names]) of every ``from`` import (module level only if asked)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in nodes:
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            yield module, [a.name for a in node.names]


def test_no_import_circle_at_module_level():
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps = set()
        for module, names in _imports(name, path, top_level_only=True):
            for n in names:
                target = f"{module}.{n}" if f"{module}.{n}" in modules else module
                if target in modules and target != name and target != "ambiseg_metrics":
                    deps.add(target)
        graph[name] = deps
    state: dict[str, int] = {}

    def visit(u: str, stack: list[str]) -> None:
        state[u] = 1
        for v in graph[u]:
            assert state.get(v) != 1, "import circle: " + " -> ".join([*stack[stack.index(v):], u, v])
            if v not in state:
                visit(v, [*stack, u])
        state[u] = 2

    for u in graph:
        if u not in state:
            visit(u, [])


def test_modules_are_small():
    long = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE).as_posix()
        n = len(path.read_text(encoding="utf-8").splitlines())
        if n > MAX_LINES and rel not in TOO_LONG_FOR_NOW:
            long[rel] = n
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_no_private_name_is_imported_from_another_module():
    found = []
    modules = _modules()
    for name, path in modules.items():
        for module, names in _imports(name, path, top_level_only=False):
            if module.startswith("ambiseg_metrics") and module != name:
                found += [f"{name}: {module}.{n}" for n in names
                          if n.startswith("_") and n != "__version__" and f"{module}.{n}" not in modules]
    assert not found, found
