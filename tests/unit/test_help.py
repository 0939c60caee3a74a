"""Every command's `--help`, as an operator reads it: each option and argument says what
it is for, and no option carries a bare type placeholder (`<bool>` on a flag that takes no
value, `<str>` where a name like DURATION or NODE says more). Typer 0.29 puts `<bool>` on
every flag, `--help` included, which is why pyproject.toml keeps typer below it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import typer
from typer.main import get_command
from typer.testing import CliRunner

from agent.cli import app as agent_app
from coordinator.main import app as coordinator_app

runner = CliRunner()


def commands(app: typer.Typer) -> Iterator[tuple[typer.Typer, list[str], Any]]:
    """Every command and group under `app` (typer vendors click, so this reads its tree by
    the methods every click group has: `list_commands` and `get_command`, which load the
    root's lazy commands)."""

    def walk(command: Any, path: list[str]) -> Iterator[tuple[list[str], Any]]:
        yield path, command
        if hasattr(command, "list_commands"):  # a group; the root's commands load lazily
            for name in command.list_commands(None):
                yield from walk(command.get_command(None, name), [*path, name])

    for path, command in walk(get_command(app), []):
        yield app, path, command


CASES = [*commands(coordinator_app), *commands(agent_app)]


@pytest.mark.parametrize(
    ("app", "path", "command"), CASES, ids=[" ".join(p) or "(root)" for _, p, _ in CASES]
)
def test_help_names_every_option_without_bare_types(app, path, command):
    result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    options = [line for line in result.output.splitlines() if "│ --" in line or "│    --" in line]
    for placeholder in ("<bool>", "<str>", "<list[str]>"):
        assert not [line for line in options if placeholder in line]
    for param in command.params:
        if param.name != "help":
            assert param.help, f"{' '.join(path)} {param.name} has no help"


UNESCAPED = re.compile(r"(?<!\\)\[[a-z_]+\]")  # `[cost]`: rich markup would eat it


@pytest.mark.parametrize(
    ("app", "path", "command"), CASES, ids=[" ".join(p) or "(root)" for _, p, _ in CASES]
)
def test_help_shows_square_brackets_literally(app, path, command):
    """A config table named in help (`[cost] price_kwh`) must be escaped (`\\[cost]`), or
    rich reads it as markup and prints `price_kwh` alone."""
    texts = [command.help or "", *(getattr(p, "help", None) or "" for p in command.params)]
    assert not [t for t in texts if UNESCAPED.search(t)], " ".join(path)
