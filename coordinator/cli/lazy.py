"""Commands imported when run, not when `dormouse` starts (click's lazy-group pattern).

Every command module pulls in SQLAlchemy, Alembic, numpy or the daemon: ~0.6 s of imports
that `dormouse --help` or `dormouse status` should not pay for the commands they do not run.
The root group knows each command's name, one-line help and panel from a table (checked
against the real commands by `tests/unit/test_cli_lazy.py`), lists them from that table
for `--help`, and imports a command's module only to run it (or show its own help).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, ClassVar

import typer
from typer.core import TyperCommand

from shared.edge.console import OneLineErrors


@dataclass(frozen=True, slots=True)
class Lazy:
    """Where a command comes from: `module:attr`, a `typer.Typer` (a noun's sub-app) or a
    function that registers commands on a root app (`register(root)`); and what `--help`
    shows for it before it is imported."""

    target: str
    help: str
    panel: str


def load(name: str, entry: Lazy) -> Any:
    """The real click command `name`, wired exactly as on a root app."""
    module, _, attr = entry.target.partition(":")
    found = getattr(importlib.import_module(module), attr)
    root = typer.Typer()
    if isinstance(found, typer.Typer):
        root.add_typer(found, name=name, rich_help_panel=entry.panel)
    else:
        found(root)
    root.callback()(lambda: None)  # a group, even with one command
    return typer.main.get_group(root).commands[name]


class LazyGroup(OneLineErrors):
    """A root group whose `COMMANDS` (set by the app) load on first use."""

    COMMANDS: ClassVar[dict[str, Lazy]] = {}
    _listing = False

    def list_commands(self, ctx: Any) -> list[str]:
        return [*self.COMMANDS, *(n for n in super().list_commands(ctx) if n not in self.COMMANDS)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        entry = self.COMMANDS.get(cmd_name)
        if entry is None or cmd_name in self.commands:
            return super().get_command(ctx, cmd_name)
        if self._listing:  # the root's --help: the table's line, nothing imported
            return TyperCommand(cmd_name, help=entry.help, rich_help_panel=entry.panel)
        self.commands[cmd_name] = load(cmd_name, entry)
        return self.commands[cmd_name]

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False
