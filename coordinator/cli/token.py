"""`dormouse token create | list | revoke`: bearer tokens for the HTTP API."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from coordinator.cli.common import PROG, DbOption, JsonOption, load, store
from coordinator.services import tokens as token_service
from coordinator.services.store import open_store
from shared.edge.config_cli import ConfigOption
from shared.edge.console import print_rows, reported_errors
from shared.units import iso

app = typer.Typer(help="Bearer tokens for the HTTP API.", no_args_is_help=True)


@app.command("create")
def create(
    scope: Annotated[
        str, typer.Option("--scope", metavar="SCOPE", help="read, or write (which also reads)")
    ] = "read",
    name: Annotated[str, typer.Option("--name", metavar="NAME", help="who or what it is for")] = "",
    config: ConfigOption = None,
    db: DbOption = None,
) -> None:
    """Make a token and print it on stdout (shown once: only its hash is kept)."""
    settings = load(config, db=db)
    with reported_errors(PROG):
        engine = open_store(settings, migrate_empty=True)
        created = token_service.create(engine, scope, name, time.time())
    typer.echo(f"token {created.id} ({created.scope}); keep it, it is not shown again", err=True)
    typer.echo(created.token)


@app.command("list")
def listing(config: ConfigOption = None, db: DbOption = None, as_json: JsonOption = False) -> None:
    """Tokens by id, scope and name (never the token itself)."""
    rows = token_service.listing(store(config, db))
    if not as_json:
        rows = [r | {"created_at": iso(r["created_at"])} for r in rows]
    print_rows(rows, ["id", "scope", "name", "created_at"], as_json=as_json)


@app.command("revoke")
def revoke(
    token_id: Annotated[str, typer.Argument(metavar="ID", help="the id `token list` shows")],
    config: ConfigOption = None,
    db: DbOption = None,
) -> None:
    """Revoke a token: the API refuses it from the next request on."""
    engine = store(config, db)
    with reported_errors(PROG):
        token_service.revoke(engine, token_id)
    typer.echo(f"revoked token {token_id}")
