"""The package's import graph (docs/architecture.md): no circle between reidkit's packages, and the lower layers
(data, models, losses, metrics, features) never import the engine or anything above it."""
from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import reidkit

PACKAGE = Path(reidkit.__file__).parent
LOWER = {"data", "models", "losses", "metrics", "features"}
ABOVE_LOWER = {"engine", "deploy", "gallery", "serve", "postprocess", "cli", "demo", "visualize"}


def _imports_by_package() -> dict[str, set[str]]:
    """top-level part of reidkit -> the other parts its modules import (function-local imports included)."""
    edges: dict[str, set[str]] = defaultdict(set)
    for path in PACKAGE.rglob("*.py"):
        source = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            edges[source] |= {name.split(".")[1] for name in names if name.startswith("reidkit.")} - {source}
    return edges


def _circles(edges: dict[str, set[str]]) -> list[list[str]]:
    found = []

    def walk(node: str, path: list[str]) -> None:
        for nxt in sorted(edges.get(node, ())):
            if nxt == path[0]:
                found.append(path + [nxt])
            elif nxt not in path and nxt > path[0]:  # each circle once, from its smallest member
                walk(nxt, path + [nxt])

    for start in sorted(edges):
        walk(start, [start])
    return found


def test_no_import_circle_between_packages():
    assert _circles(_imports_by_package()) == []


def test_the_lower_layers_never_import_upwards():
    edges = _imports_by_package()
    upward = {(low, high) for low in LOWER for high in edges.get(low, set()) & ABOVE_LOWER}
    assert upward == set()


def test_the_circle_finder_finds_a_circle():
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
