"""The code's shape, as docs/design.md's package map states it: small modules, no import circle, and a
Lambda layer without the operator CLI's code or dependencies.

The import graph is read from the sources (every ``import``, also those inside functions), so a lazy
import cannot hide a circle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {
    "eks_capture": ROOT / "layers" / "eks_capture",
    "eks_capture_cli": ROOT / "cli" / "eks_capture_cli",
    "eks_capture_agent": ROOT / "capture-image" / "eks_capture_agent",
    "localcloud": ROOT / "localcloud",
}
MAX_LINES = 400
#: What only the operator CLI may import: its own package and the dependencies of the ``cli`` extra.
CLI_ONLY = {"eks_capture_cli", "typer", "rich"}
#: The lower layers of the package and what builds on them (docs/design.md: imports go down, never up).
LOWER_LAYERS = [("kube", "captures"), ("store", "captures"), ("store", "kube")]


def _modules() -> dict[str, Path]:
    found = {}
    for top, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            parts = [top, *path.relative_to(folder).with_suffix("").parts]
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


MODULES = _modules()


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, named in full (``from a import b`` is ``a.b`` when b is a module)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                names.add(full if full in MODULES else node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, edges = work[-1]
            nxt = next(edges, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    circles.append(sorted(component))
    return circles


def test_no_module_of_the_layer_or_the_cli_is_over_400_lines() -> None:
    sizes = {
        name: len(path.read_text().splitlines())
        for name, path in MODULES.items()
        if name.split(".")[0] in ("eks_capture", "eks_capture_cli")
    }

    assert {name: lines for name, lines in sizes.items() if lines > MAX_LINES} == {}


@pytest.mark.parametrize("top", ["eks_capture", "eks_capture_cli"])
def test_no_import_circle_in_the_package(top: str) -> None:
    inside = {name for name in MODULES if name.split(".")[0] == top}
    graph = {name: (_imports(MODULES[name]) & inside) - {name} for name in inside}

    assert _circles(graph) == []


def test_the_circle_finder_finds_a_circle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}

    assert _circles(graph) == [["a", "b", "c"]]


def _within(package: str, module: str) -> bool:
    return module == package or module.startswith(f"{package}.")


@pytest.mark.parametrize(("lower", "upper"), LOWER_LAYERS)
def test_a_lower_layer_never_imports_what_builds_on_it(lower: str, upper: str) -> None:
    lower, upper = f"eks_capture.{lower}", f"eks_capture.{upper}"
    upward = {
        name: sorted(imported for imported in _imports(path) if _within(upper, imported))
        for name, path in MODULES.items()
        if _within(lower, name)
    }

    assert {name: found for name, found in upward.items() if found} == {}


def test_the_layer_imports_nothing_only_the_cli_has() -> None:
    layer = [name for name in MODULES if name.split(".")[0] == "eks_capture"]
    tops = {name: {imported.split(".")[0] for imported in _imports(MODULES[name])} for name in layer}

    assert {name: sorted(found & CLI_ONLY) for name, found in tops.items() if found & CLI_ONLY} == {}
