"""The root's table of lazily imported commands (`coordinator/cli/lazy.py`) says what the
commands themselves say, names every command the modules register, and keeps `--help`
and `--version` free of the heavy imports."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest
import typer

from coordinator.cli.lazy import load
from coordinator.cli.root import COMMANDS


def first_paragraph(text: str | None) -> str:
    import inspect  # noqa: PLC0415

    return " ".join(inspect.cleandoc(text or "").split("\n\n")[0].split())


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_the_table_says_what_the_command_says(name):
    entry = COMMANDS[name]
    command = load(name, entry)
    assert command.name == name
    assert getattr(command, "rich_help_panel", None) == entry.panel
    assert first_paragraph(command.help) == entry.help


def test_every_registered_command_is_in_the_table():
    registered = set()
    for target in {entry.target for entry in COMMANDS.values()}:
        module, _, attr = target.partition(":")
        found = getattr(importlib.import_module(module), attr)
        if isinstance(found, typer.Typer):
            continue
        root = typer.Typer()
        found(root)
        registered |= {c.name or c.callback.__name__ for c in root.registered_commands}
    assert registered <= set(COMMANDS)
    assert registered == {n for n, e in COMMANDS.items() if not e.target.endswith(":app")}


@pytest.mark.parametrize("argv", [["--help"], ["--version"], []])
def test_help_and_version_import_no_database_or_numpy(argv):
    code = (
        "import sys; from coordinator.main import main; sys.argv = ['dormouse', *sys.argv[1:]]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('sqlalchemy', 'alembic', 'numpy') if m in sys.modules]\n"
        "print('HEAVY', heavy)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=60, check=False
    )
    assert "HEAVY []" in result.stdout, result.stdout[-500:] + result.stderr[-500:]
