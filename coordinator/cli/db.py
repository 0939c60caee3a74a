"""`dormouse db upgrade | current`: the store's schema."""

from __future__ import annotations

import typer

from coordinator.cli.common import PROG, DbOption, load
from coordinator.services import store as store_service
from shared.edge.config_cli import ConfigOption
from shared.edge.console import reported_errors

app = typer.Typer(help="The SQL store: schema migrations.", no_args_is_help=True)


@app.command("upgrade")
def upgrade(config: ConfigOption = None, db: DbOption = None) -> None:
    """Create the store, or migrate it to this release's schema."""
    settings = load(config, db=db)
    with reported_errors(PROG):
        before, now = store_service.upgrade_schema(settings)
    typer.echo(f"store at revision {now} (was {before or 'empty'})")


@app.command("current")
def current(config: ConfigOption = None, db: DbOption = None) -> None:
    """Print the store's schema revision and the one this release needs."""
    settings = load(config, db=db)
    with reported_errors(PROG):
        revision, head = store_service.schema_revisions(settings)
    typer.echo(f"store: {revision or 'empty'}; this release: {head}")
