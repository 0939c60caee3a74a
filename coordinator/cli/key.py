"""`dormouse key generate`: the HMAC key that signs commands to agents."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from coordinator.cli.common import PROG, load
from coordinator.services.keys import write_key_file
from shared.edge.config_cli import ConfigOption
from shared.edge.console import reported_errors

app = typer.Typer(help="Manage the HMAC key that signs commands.", no_args_is_help=True)


@app.command("generate")
def generate(
    config: ConfigOption = None,
    out: Annotated[
        Path | None, typer.Option(help="where to write (default: command_key_file)")
    ] = None,
    force: Annotated[bool, typer.Option(help="replace an existing key")] = False,
) -> None:
    """Write a new random key, readable by its owner only. Copy it to every agent."""
    with reported_errors(PROG):
        target = out or load(config).command_key_file
        created = write_key_file(target, force=force)
    if created is not None:
        typer.echo(f"created {created}")
    typer.echo(f"wrote {target} (mode 0600); copy it to every agent's command_key_file")
