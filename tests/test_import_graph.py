"""The package's imports: they flow one way through the layers, and no module imports, directly or
through others, a module that imports it (function-level imports count too)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import magpie_datasets as magpie

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "magpie_datasets"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports_of(path: Path) -> Iterator[tuple[str, list[str]]]:
    """(module, names) of each import in `path`, relative ones resolved: `from ..x import y` in
    `magpie_datasets.stages.z` gives ("magpie_datasets.x", ["y"]); `import a.b` gives ("a.b", [])."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            target = node.module or ""
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, *(node.module.split(".") if node.module else [])])
            yield target, [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            yield from ((a.name, []) for a in node.names)


def import_edges(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Each module's imports of other package modules: `from .x import y` names module `x.y` where
    that is a module, else `x` (an implicit parent-package import is not an edge)."""
    edges: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for target, names in imports_of(path):
            targets.update(f"{target}.{n}" if f"{target}.{n}" in modules else target for n in names or [""])
        edges[name] = {t for t in targets if t in modules and t != name}
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
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

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_loop_through_a_function_level_import():
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(edges) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_loops_in_the_package():
    assert cycles(import_edges(_modules())) == []


# layer of each part of the package; a module may import only from its own layer or below
LAYERS = {"version": 0, "extras": 0, "schema": 0, "templates": 0, "engines": 1, "stages": 2, "runners": 3, "publish": 3,
          "analysis": 3, "recipes": 4, "cli": 5}
SHARED_STAGE_HELPERS = {"table", "entry", "columns", "rows", "texts", "answering", "sanitize"}


def _part(dotted: str) -> str | None:
    parts = dotted.split(".")
    return parts[1] if len(parts) > 1 else None


def test_imports_flow_one_way():
    wrong = []
    for path in PACKAGE.rglob("*.py"):
        here = _part(_module_name(path))
        if here in (None, "__init__"):
            continue
        for target, names in imports_of(path):
            if target.split(".")[0] != "magpie_datasets" or (target == "magpie_datasets" and not names):
                continue
            there = _part(target)
            if there is None:  # `from .. import x`: x is the part
                there = names[0]
            if LAYERS.get(there, 0) > LAYERS[here]:
                wrong.append(f"{path.relative_to(ROOT)} imports {target}")
            # the table collects the stage modules; any other stage uses another only through shared helpers
            if here == there == "stages" and path.parent.name == "stages" and path.stem not in ("table", "__init__"):
                sibling = target.split(".")[2] if len(target.split(".")) > 2 else names[0]
                public = set(magpie.__all__)
                if sibling not in SHARED_STAGE_HELPERS and not set(names) <= public and sibling != path.stem:
                    wrong.append(f"{path.relative_to(ROOT)} imports {target}: {names} (another stage's internals)")
    assert wrong == []
