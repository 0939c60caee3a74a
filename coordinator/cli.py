"""`dormouse`: the operator's command line (one typer sub-app per noun)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from coordinator import __version__
from coordinator.settings import DEFAULT_CONFIG_PATH, CoordinatorConfig
from shared.config_cli import ConfigOption, config_app, load_from_cli
from shared.console import reported_errors
from shared.errors import ConfigError
from shared.signing import generate_key

PROG = "dormouse"
app = typer.Typer(
    name=PROG,
    help="Run a fleet of CPU/GPU servers cheaply.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
key_app = typer.Typer(help="Manage the HMAC key that signs commands.", no_args_is_help=True)
app.add_typer(config_app(CoordinatorConfig, DEFAULT_CONFIG_PATH, PROG), name="config")
app.add_typer(key_app, name="key")


@app.command("version")
def version() -> None:
    """Print the version."""
    typer.echo(f"dormouse {__version__}")


@key_app.command("generate")
def key_generate(
    config: ConfigOption = None,
    out: Annotated[
        Path | None, typer.Option(help="where to write (default: command_key_file)")
    ] = None,
    force: Annotated[bool, typer.Option(help="replace an existing key")] = False,
) -> None:
    """Write a new random key, readable by its owner only. Copy it to every agent."""
    with reported_errors(PROG):
        target = (
            out or load_from_cli(CoordinatorConfig, DEFAULT_CONFIG_PATH, config).command_key_file
        )
        write_key_file(target, force=force)
    typer.echo(f"wrote {target}")


def write_key_file(path: Path, *, force: bool) -> None:
    if path.exists() and not force:
        raise ConfigError(f"{path} exists; pass --force to replace it (agents need the new key)")
    path.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    fd = os.open(path, flags, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(generate_key() + "\n")
    path.chmod(0o600)


def main() -> None:
    app()
