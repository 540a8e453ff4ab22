"""The package's import graph: acyclic, function-level imports included, and light packages."""

from __future__ import annotations

import ast
from pathlib import Path

import andlib

PACKAGE_DIR = Path(andlib.__file__).resolve().parent


def module_files() -> dict[str, Path]:
    """``{dotted module name: file}`` of every module of ``andlib`` (packages by ``__init__``)."""
    found = {}
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The longest prefix of ``name`` that is a module (``andlib.x.f`` -> ``andlib.x``)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_graph() -> dict[str, set[str]]:
    """``{module: the andlib modules it imports}``, from every ``import`` and ``from ... import``
    anywhere in its source (inside functions too), relative imports resolved. An import of a
    package ``__init__`` that contains the importer is no edge (the package is a namespace)."""
    modules = module_files()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                targets = [source] + [f"{source}.{alias.name}" for alias in node.names]
            for target in targets:
                if not target.startswith("andlib"):
                    continue
                found = _resolve(target, modules)
                if found and found != module and not module.startswith(found + "."):
                    graph[module].add(found)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as ``[a, b, ..., a]``, or ``None`` when it is acyclic."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_find_cycle_reports_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_the_graph_sees_function_level_and_relative_imports(tmp_path):
    graph = import_graph()
    # a function-level import (pipeline imports the pitch evaluation lazily)
    assert "andlib.evaluate.pitch" in graph["andlib.pipeline"]
    assert "andlib.config" in graph["andlib.store"]


def test_andlib_has_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_package_inits_are_light():
    """Subpackage ``__init__`` files import nothing: ``andlib.x.y`` never pulls in siblings."""
    for module, path in module_files().items():
        if path.name == "__init__.py" and module != "andlib":
            tree = ast.parse(path.read_text(encoding="utf-8"))
            imports = [n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)]
            assert not imports, f"{module}: keep the package __init__ free of imports"


def test_only_the_pipeline_runs_the_describe_stages_for_evaluate():
    """The evaluate stage's control runs are the pipeline's: no module of ``andlib.evaluate``
    imports a describe stage (caption, summarize, concepts) to run it itself."""
    describe_stages = {
        "andlib.describe.captioning",
        "andlib.describe.summarize",
        "andlib.describe.concepts",
    }
    graph = import_graph()
    for module, targets in graph.items():
        if module.startswith("andlib.evaluate"):
            assert not targets & describe_stages, f"{module} imports {targets & describe_stages}"
