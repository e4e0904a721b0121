"""The layers import one way: core <- sources, digests <- daemon, and no module cycles.

Data flows sources -> store -> digests -> targets; the imports must say so, or the
layering is only a wish. Every import counts, also those inside functions and under
TYPE_CHECKING: a lazy import against the direction is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("core", "sources", "digests", "daemon")
# What each layer may import from the project, besides itself.
ALLOWED: dict[str, frozenset[str]] = {
    "core": frozenset(),
    "sources": frozenset({"core"}),
    "digests": frozenset({"core"}),
    "daemon": frozenset({"core", "sources", "digests"}),
}
# Only the orchestration reads and writes the store; sources and digests get values.
STORE_USERS = frozenset({"core", "daemon"})


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {
        _module_name(path): path
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
    }


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The project modules `name` imports (a `from package import module` names the module)."""
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(name, path, known) for name, path in modules.items()}


def test_layers_import_one_way() -> None:
    wrong = []
    for module, targets in _graph().items():
        layer = module.split(".")[0]
        for target in targets:
            other = target.split(".")[0]
            if other != layer and other not in ALLOWED[layer]:
                wrong.append(f"{module} imports {target}")
            if target.startswith("core.store") and layer not in STORE_USERS:
                wrong.append(f"{module} imports {target}: only daemon/ reads the store")
    assert not wrong, "imports against the direction:\n" + "\n".join(sorted(wrong))


def test_no_import_cycles() -> None:
    graph = _graph()
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph[module]):
            # A package's __init__ importing its own submodules is how packages work.
            if target.startswith(module + "."):
                continue
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_the_checker_sees_imports() -> None:
    """Guard against a checker that passes because it finds nothing."""
    graph = _graph()
    assert "core.config" in graph["daemon.cli"] or any(
        target.startswith("core") for target in graph["daemon.cli"]
    )
    assert any(target.startswith("sources.") for target in graph["sources.collect"])
