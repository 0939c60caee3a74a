"""The pure ring: `shared/`, placement, the power policy and energy maths, and the job,
node and rollup maths import no I/O (STYLE.md, "Three rings")."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
SHARED = ROOT / "shared"
PURE = sorted(
    [
        *SHARED.glob("*.py"),
        *(ROOT / "coordinator" / "placement").glob("*.py"),
        *(ROOT / "coordinator" / "power").glob("*.py"),
        *(ROOT / "coordinator" / "sim").glob("*.py"),
        ROOT / "coordinator" / "jobstate.py",
        ROOT / "coordinator" / "snapshot.py",
        ROOT / "coordinator" / "registry.py",
        ROOT / "coordinator" / "rollups.py",
    ]
)
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


@pytest.mark.parametrize("path", PURE, ids=lambda p: str(p.relative_to(ROOT)))
def test_pure_module_imports_no_io(path):
    assert not imported_roots(path) & FORBIDDEN


def test_the_check_sees_imports(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("import asyncio\nfrom sqlalchemy import select\n")
    assert imported_roots(probe) >= {"asyncio", "sqlalchemy"}
