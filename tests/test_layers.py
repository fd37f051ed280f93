"""Layering: every import between snndeploy modules (function-local ones included) follows the flow written in
docs/architecture.md, and no modules or areas import each other in a cycle."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "snndeploy"


def package_modules() -> dict[str, Path]:
    """Import name -> file of every module of the package (pyproject's package-dir mapping)."""
    mapping = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    modules: dict[str, Path] = {}
    for package, folder in mapping.items():
        for file in (ROOT / folder).rglob("*.py"):
            parts = file.relative_to(ROOT / folder).with_suffix("").parts
            if any(p.startswith(".") or p == "__pycache__" for p in parts):
                continue
            name = ".".join([package, *parts])
            modules[name.removesuffix(".__init__")] = file
    return modules


def imports_of(file: Path, modules: dict[str, Path]) -> set[str]:
    """The package modules ``file`` imports anywhere in its body (``from a import b`` counts b if it is a module)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(file.read_text(), str(file))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        else:
            continue
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name.startswith(PACKAGE):
                found.add(name)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = package_modules()
    return {name: imports_of(file, modules) - {name} for name, file in modules.items()}


def documented_areas() -> list[tuple[str, list[str]]]:
    """The areas in flow order, each with its module patterns, from the ``layers`` block of docs/architecture.md."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    block = re.search(r"```layers\n(.*?)```", text, re.S)
    assert block, "docs/architecture.md needs a ```layers block (one area per line: 'name: patterns')"
    areas = []
    for line in block.group(1).splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, patterns = line.partition(":")
            areas.append((name.strip(), patterns.split()))
    return areas


def _matches(module: str, pattern: str) -> bool:
    """``*.cli``: every module named cli; the bare package name: its ``__init__`` only; else a module or package."""
    if pattern.startswith("*."):
        return module.endswith(pattern[1:])
    return module == pattern or (pattern != PACKAGE and module.startswith(pattern + "."))


def area_of(module: str, areas: list[tuple[str, list[str]]]) -> int:
    """Index of the area whose most specific pattern matches ``module``."""
    best, best_len = None, -1
    for index, (_, patterns) in enumerate(areas):
        for pattern in patterns:
            length = 10**6 if pattern.startswith("*.") else len(pattern)
            if _matches(module, pattern) and length > best_len:
                best, best_len = index, length
    assert best is not None, f"{module} belongs to no area of docs/architecture.md"
    return best


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph.get(node, ())):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_parser_sees_function_local_imports(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from snndeploy.export import ir\n    import snndeploy.errors\n")
    known = {"snndeploy": module, "snndeploy.export": module, "snndeploy.export.ir": module,
             "snndeploy.errors": module}
    assert imports_of(module, known) == {"snndeploy.export", "snndeploy.export.ir", "snndeploy.errors"}
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_cycles():
    assert cycles(import_graph()) == []


def test_imports_follow_the_documented_flow():
    areas = documented_areas()
    graph = import_graph()
    against = [f"{module} ({areas[area_of(module, areas)][0]}) imports {target} ({areas[area_of(target, areas)][0]})"
               for module, targets in sorted(graph.items()) for target in sorted(targets)
               if area_of(target, areas) > area_of(module, areas)]
    assert against == []


def test_no_area_cycles():
    areas = documented_areas()
    by_area: dict[str, set[str]] = {}
    for module, targets in import_graph().items():
        source = areas[area_of(module, areas)][0]
        by_area.setdefault(source, set()).update(areas[area_of(t, areas)][0] for t in targets)
    assert cycles({a: t - {a} for a, t in by_area.items()}) == []


def test_no_module_imports_a_command_module():
    graph = import_graph()
    commands = {m for m in graph if m.endswith(".cli") or m in ("snndeploy.target", "snndeploy.pipeline")}
    assert sorted((m, t) for m, targets in graph.items() for t in targets & commands if m != "snndeploy.cli") == []
