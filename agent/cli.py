"""`dormouse-agent`: the per-server daemon's command line."""

from __future__ import annotations

import typer

from agent import __version__
from agent.settings import DEFAULT_CONFIG_PATH, AgentConfig
from shared.config_cli import config_app

PROG = "dormouse-agent"
app = typer.Typer(
    name=PROG,
    help="Sample this server, publish telemetry, run jobs, sleep when told.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(config_app(AgentConfig, DEFAULT_CONFIG_PATH, PROG), name="config")


@app.command("version")
def version() -> None:
    """Print the version."""
    typer.echo(f"dormouse-agent {__version__}")


def main() -> None:
    app()
