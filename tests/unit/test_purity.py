"""The pure ring imports no I/O (STYLE.md, "Three rings"). The ring is a set of folders,
not a list of files: a module added to one of them is checked without anyone listing it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
PURE_PACKAGES = (
    "shared",  # its edge/ subpackage is the one impure part, and is not globbed here
    "coordinator/core",
    "coordinator/placement",
    "coordinator/power",
    "coordinator/sim",
)
PURE = sorted(path for package in PURE_PACKAGES for path in (ROOT / package).glob("*.py"))
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
    "typer",
    "rich",
    "prometheus_client",
    "wakeonlan",
    "amqtt",
    "starlette",
    "uvicorn",
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


def test_every_pure_package_is_there():
    assert all((ROOT / package / "__init__.py").is_file() for package in PURE_PACKAGES)
    assert len(PURE) >= 40
