"""`dormouse`: the operator's command line, composed here from one module per noun.

`coordinator/cli/` holds the commands that read or change the store through the services;
`coordinator/daemon/entry.py` the two that start long-running work (`run`, `demo`), which
import the daemon only when called. This module is where the two meet.
"""

from __future__ import annotations

import typer

from coordinator import __version__
from coordinator.cli import (
    db,
    history,
    install,
    jobs,
    key,
    nodes,
    power,
    report,
    simulate,
    status,
    token,
)
from coordinator.cli.common import PROG
from coordinator.daemon import entry
from coordinator.settings import DEFAULT_CONFIG_PATH, CoordinatorConfig
from shared.edge.config_cli import config_app
from shared.edge.console import add_version_flag

app = typer.Typer(
    name=PROG,
    help="Run a fleet of CPU/GPU servers cheaply.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
SETUP = "Setup"
for noun, sub_app, panel in (
    ("nodes", nodes.app, nodes.PANEL),
    ("jobs", jobs.app, jobs.PANEL),
    ("power", power.app, power.PANEL),
    ("config", config_app(CoordinatorConfig, DEFAULT_CONFIG_PATH, PROG), SETUP),
    ("key", key.app, SETUP),
    ("db", db.app, SETUP),
    ("token", token.app, SETUP),
):
    app.add_typer(sub_app, name=noun, rich_help_panel=panel)
for module in (nodes, jobs, power):
    module.shortcuts(app)
for module in (status, history, report, simulate, entry, install):
    module.register(app)


VERSION = f"dormouse {__version__}"
add_version_flag(app, VERSION)


@app.command("version", rich_help_panel=SETUP)
def version() -> None:
    """Print the version."""
    typer.echo(VERSION)


def main() -> None:
    """Database errors that escape a command (the server went away mid-way) end in one line
    and exit 1, like every other error, not a traceback."""
    try:
        app()
    except Exception as exc:
        if not type(exc).__module__.startswith("sqlalchemy"):
            raise
        from coordinator.services.store import db_reason  # noqa: PLC0415 - only on error

        typer.echo(f"{PROG}: error: db: {db_reason(exc)}", err=True)
        raise SystemExit(1) from None
