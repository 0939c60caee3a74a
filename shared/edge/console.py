"""Output for both CLIs: one rich table for people, `--json` for scripts, one-line errors."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from shared.errors import DormouseError


def print_rows(
    rows: Sequence[dict[str, Any]],
    columns: Sequence[str],
    *,
    as_json: bool,
    title: str | None = None,
) -> None:
    """A listing: JSON (a list of objects) when asked, else a table."""
    if as_json:
        typer.echo(json.dumps([{c: _plain(r.get(c)) for c in columns} for r in rows], indent=2))
        return
    table = Table(title=title)
    for i, column in enumerate(columns):  # wrap, never cut: a truncated name is useless
        table.add_column(column, overflow="fold", no_wrap=i == 0)
    for row in rows:
        table.add_row(*("-" if row.get(c) is None else str(row.get(c)) for c in columns))
    Console().print(table)


def print_json(value: Any) -> None:
    """One JSON document, for `--json` outputs that are not listings."""
    typer.echo(json.dumps(value, indent=2, default=_plain))


def _plain(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return str(value)


@contextmanager
def reported_errors(prog: str, code: int = 2) -> Iterator[None]:
    """Turn a DormouseError into one line on stderr and exit `code`, instead of a traceback."""
    try:
        yield
    except DormouseError as exc:
        typer.echo(f"{prog}: error: {exc}", err=True)
        raise typer.Exit(code) from None
