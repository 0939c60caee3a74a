"""The pure ring: `shared/` must not import I/O libraries (STYLE.md, "Three rings")."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SHARED = Path(__file__).parents[2] / "shared"
FORBIDDEN = {
    "asyncio",
    "aiomqtt",
    "paho",
    "sqlalchemy",
    "alembic",
    "pynvml",
    "subprocess",
    "socket",
    "psutil",
    "psycopg",
}


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("path", sorted(SHARED.glob("*.py")), ids=lambda p: p.name)
def test_shared_module_is_pure(path):
    assert not imported_roots(path) & FORBIDDEN


def test_the_check_sees_imports(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("import asyncio\nfrom sqlalchemy import select\n")
    assert imported_roots(probe) >= {"asyncio", "sqlalchemy"}
