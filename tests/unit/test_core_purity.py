"""The pure core (feeds/core/) imports the standard library and itself, nothing else.

The one exception is MessagePack in wire_formats.py (README, "Architecture"):
it converts frames, and it brings no framework with it.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "feeds" / "core"
MODULES = sorted(path.stem for path in CORE.glob("*.py") if path.stem != "__init__")
# Third-party packages a core module may import, by module.
ALLOWED = {"wire_formats": {"msgpack"}}


def imported(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth of its code."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.add("feeds.core" if node.level else str(node.module))
    return names


def in_the_core(module: str) -> bool:
    return module == "feeds.core" or module.startswith("feeds.core.")


def test_the_core_has_modules():
    assert {"engine", "protocol", "outbox", "wire_formats"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_a_core_module_imports_only_the_standard_library_and_the_core(name):
    top = sys.stdlib_module_names | ALLOWED.get(name, set())
    outside = sorted(
        module
        for module in imported(CORE / f"{name}.py")
        if not in_the_core(module) and module.split(".")[0] not in top
    )
    assert outside == []


def test_importing_the_core_loads_neither_django_nor_channels():
    code = (
        "import importlib, json, sys\n"
        f"for name in {MODULES!r}:\n"
        "    importlib.import_module('feeds.core.' + name)\n"
        "print(json.dumps(sorted(m for m in sys.modules"
        " if m.split('.')[0] in ('django', 'channels'))))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
