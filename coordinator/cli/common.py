"""What every `dormouse` command shares: options, config loading, the store, failing."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from coordinator.services.store import Engine, open_store
from coordinator.settings import DEFAULT_CONFIG_PATH, CoordinatorConfig
from shared.edge.config_cli import load_from_cli
from shared.edge.console import reported_errors
from shared.units import parse_duration

PROG = "dormouse"
DbOption = Annotated[
    str | None, typer.Option("--db", metavar="URL", help="SQLAlchemy URL of the store")
]
JsonOption = Annotated[bool, typer.Option("--json", help="print JSON")]


def load(config: Path | None, **overrides: Any) -> CoordinatorConfig:
    with reported_errors(PROG):
        loaded: CoordinatorConfig = load_from_cli(
            CoordinatorConfig, DEFAULT_CONFIG_PATH, config, overrides
        )
    return loaded


def store(config: Path | None, db: str | None) -> Engine:
    """The store a reading command works on (never created by reading)."""
    settings = load(config, db=db)
    with reported_errors(PROG):
        return open_store(settings, migrate_empty=False)


def fail(reason: str, code: int = 2) -> NoReturn:
    typer.echo(f"{PROG}: error: {reason}", err=True)
    raise typer.Exit(code)


def positive_duration(text: str, flag: str) -> float:
    """A duration flag that must be more than zero, or a one-line error."""
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        fail(f"{flag}: {exc}")
    if seconds <= 0:
        fail(f"{flag} must be more than 0")
    return seconds
