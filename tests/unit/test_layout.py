"""The shape of the code: rooms that import only downwards, no circles, no giant modules.

A quote flows core -> publish -> deliver -> edges (README, "Architecture").
Each room may import its own modules and the rooms below it, never one
above: the Django domain (feeds/models.py, services.py, auth.py, ...) sits
between the pure core and publishing. Wiring modules (the app config, the
URL map, management commands, the project package) assemble the rooms and
may import any of them. Read from the source with ``ast``, lazy imports
inside functions included, so a circle hidden in a function body counts.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MAX_LINES = 400
ROOMS = {"core": 0, "domain": 1, "publish": 2, "deliver": 3, "edges": 4}
WIRING = ("feeds.apps", "feeds.urls", "feeds.management", "feeds.migrations", "marketfeed")


def product_modules() -> dict[str, Path]:
    found = {}
    for package in ("feeds", "marketfeed"):
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


MODULES = product_modules()


def imports_of(name: str) -> set[str]:
    """The product modules ``name`` imports, anywhere in its body."""
    tree = ast.parse(MODULES[name].read_text())
    package = name if MODULES[name].name == "__init__.py" else name.rpartition(".")[0]
    wanted: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            wanted.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            wanted.add(base)
            wanted.update(f"{base}.{alias.name}" for alias in node.names)
    return {m for m in wanted if m in MODULES and m != name}


def room(name: str) -> int | None:
    """The rank of the room ``name`` lives in; None for wiring."""
    if name.startswith(WIRING) or name == "feeds":
        return None
    parts = name.split(".")
    if len(parts) > 2 and parts[1] in ROOMS:
        return ROOMS[parts[1]]
    if len(parts) == 2 and parts[1] in ROOMS:  # a room's package itself
        return ROOMS[parts[1]]
    return ROOMS["domain"]


GRAPH = {name: imports_of(name) for name in MODULES}


def test_every_room_imports_only_itself_and_the_rooms_below():
    upward = [
        f"{name} imports {other}"
        for name, others in GRAPH.items()
        if room(name) is not None
        for other in sorted(others)
        if room(other) is not None and room(other) > room(name)  # type: ignore[operator]
    ]
    assert upward == []


def test_no_product_module_is_part_of_an_import_circle():
    circles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(name: str) -> None:
        state[name] = 1
        path.append(name)
        for other in sorted(GRAPH[name]):
            if state.get(other) == 1:
                circles.append([*path[path.index(other) :], other])
            elif other not in state:
                visit(other)
        path.pop()
        state[name] = 2

    for name in sorted(GRAPH):
        if name not in state:
            visit(name)
    assert circles == []


@pytest.mark.parametrize("name", sorted(n for n in MODULES if not n.startswith("feeds.migrations")))
def test_no_module_is_over_400_lines(name):
    lines = len(MODULES[name].read_text().splitlines())
    assert lines <= MAX_LINES, f"{MODULES[name].relative_to(ROOT)} has {lines} lines"


def test_the_graph_is_read_from_real_imports():
    """The checks above see what they claim to: known edges are in the graph."""
    assert "feeds.core.protocol" in GRAPH["feeds.deliver.session"]
    assert "feeds.deliver.session" in GRAPH["feeds.edges.websocket"]
    assert room("feeds.edges.websocket") > room("feeds.deliver.hub") > room("feeds.core.outbox")
