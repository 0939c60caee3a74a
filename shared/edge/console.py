"""Output for both CLIs: one rich table for people, `--json` for scripts, one-line errors."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

from shared.errors import DormouseError
from shared.units import format_bytes, format_labels


def print_rows(
    rows: Sequence[dict[str, Any]],
    columns: Sequence[str],
    *,
    as_json: bool,
    title: str | None = None,
) -> None:
    """A listing: JSON (a list of objects) when asked, else a table for people: numbers
    rounded, byte counts in binary units, and no wrapping at 80 columns when piped (a
    `| grep` must see whole rows)."""
    if as_json:
        typer.echo(json.dumps([{c: _plain(r.get(c)) for c in columns} for r in rows], indent=2))
        return
    if len(rows) > LONG_TABLE:
        typer.echo(aligned(rows, columns, title))
        return
    table = Table(title=title)
    for i, column in enumerate(columns):  # wrap, never cut: a truncated name is useless
        table.add_column(column, overflow="fold", no_wrap=i == 0)
    for row in rows:
        table.add_row(*(cell(row.get(c), bytes_=c.endswith("_bytes")) for c in columns))
    table_console().print(table)


def table_console() -> Console:
    """The terminal's width for people; unbounded when piped (and COLUMNS unset), so a
    `| grep` or a file sees whole rows, never `dormou…`."""
    console = Console()
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(width=UNWRAPPED_WIDTH)
    return console


UNWRAPPED_WIDTH = 10_000
LONG_TABLE = 100  # rows past which rich's per-cell layout (~0.5 ms a row) costs seconds


def aligned(rows: Sequence[dict[str, Any]], columns: Sequence[str], title: str | None) -> str:
    """A long listing as `kubectl get` and `squeue` print one: a header, then one line per
    row in columns two spaces apart, numbers right-aligned; never cut or wrapped."""
    cells = [[cell(r.get(c), bytes_=c.endswith("_bytes")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(line[i]) for line in cells)) for i, c in enumerate(columns)]
    numeric = [all(_is_number(r.get(c)) for r in rows) for c in columns]

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            v.rjust(w) if right else v.ljust(w)
            for v, w, right in zip(values, widths, numeric, strict=True)
        ).rstrip()

    lines = [line(list(columns)), *(line(values) for values in cells)]
    return "\n".join([title, *lines] if title else lines)


def _is_number(value: Any) -> bool:
    return value is None or (isinstance(value, int | float) and not isinstance(value, bool))


def cell(value: Any, *, bytes_: bool = False) -> str:
    """A value as a table shows it: 2.0 -> "2", 82.3232 -> "82.32", 0.00123 -> "0.00123",
    -0.0 -> "0", byte counts (`bytes_`) as "1.5 GiB", booleans as yes/no, maps as k=v,
    lists joined; never a Python repr."""
    if value is None or isinstance(value, bool | dict | list | tuple):
        return _shaped(value, bytes_=bytes_)
    if not isinstance(value, int | float):
        return str(value)
    if bytes_:
        return format_bytes(value)
    return _number(value)


def _shaped(value: Any, *, bytes_: bool) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict):
        return format_labels(value) or "-"
    return ", ".join(cell(v, bytes_=bytes_) for v in value) or "-"


def _number(value: float) -> str:
    if isinstance(value, int) or value.is_integer():
        return str(int(value))
    text = f"{value:.2f}" if abs(value) >= 0.01 else f"{value:.3g}"
    return "0" if float(text) == 0 else text  # never "-0.00"


def print_json(value: Any) -> None:
    """One JSON document, for `--json` outputs that are not listings."""
    typer.echo(json.dumps(_plain(value), indent=2))


def _plain(value: Any) -> Any:
    """JSON for scripts: times stay epoch seconds (UTC), counters held as floats become
    integers, everything else as is."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return str(value)


@contextmanager
def reported_errors(prog: str, code: int = 2) -> Iterator[None]:
    """Turn a DormouseError into one line on stderr and exit `code`, instead of a traceback."""
    try:
        yield
    except DormouseError as exc:
        typer.echo(f"{prog}: error: {exc}", err=True)
        raise typer.Exit(code) from None


def add_version_flag(app: typer.Typer, text: str) -> None:
    """`PROG --version`, as every mature CLI has, beside the `version` command. The option
    is a default value, not an annotation: annotations are strings here (PEP 563), which
    typer evaluates in module scope, where the closure's callback does not exist."""

    def show(value: bool) -> None:
        if value:
            typer.echo(text)
            raise typer.Exit

    flag = typer.Option(
        False, "--version", callback=show, is_eager=True, help="print the version and exit"
    )

    @app.callback()
    def root(version: bool = flag) -> None:
        """The options every command shares."""


class OneLineErrors(TyperGroup):
    """A root group whose usage errors (a bad value, a missing argument, an unknown command
    or option) read as every other error does: `PROG: error: REASON (see `PATH --help`)`,
    one line on stderr, exit 2, not click's boxed usage panel."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["standalone_mode"] = False  # errors come here; `Exit(code)` returns code
        try:
            code = super().main(*args, **kwargs)
        except typer.TyperException as exc:  # click's ClickException, as typer vendors it
            sys.exit(self._said(exc))
        except typer.Abort:
            typer.echo("Aborted.", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)

    def _said(self, exc: typer.TyperException) -> int:
        ctx = getattr(exc, "ctx", None)
        if type(exc).__name__ == "NoArgsIsHelpError":  # the bare command: its help
            typer.echo(ctx.get_help() if ctx is not None else "")
            return 2
        prog = self.name or Path(sys.argv[0]).name
        reason = " ".join(exc.format_message().split())
        see = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        typer.echo(f"{prog}: error: {reason}{see}", err=True)
        return int(getattr(exc, "exit_code", 2))
