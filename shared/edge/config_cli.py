"""The `config` sub-app both CLIs share: `config show` and `config check` for a schema."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from shared.config import config_path, env_name, load_config, shown
from shared.edge.console import print_rows, reported_errors

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="TOML config file (default: $DORMOUSE_CONFIG, then the system path if it exists)",
        dir_okay=False,
    ),
]


def load_from_cli(
    schema: type[Any],
    default_path: Path,
    flag: Path | None,
    overrides: dict[str, Any] | None = None,
) -> Any:
    """The config a command runs with: defaults, file, environment, then flags."""
    return load_config(schema, path=config_path(flag, default_path), overrides=overrides)


def config_app(schema: type[Any], default_path: Path, prog: str) -> typer.Typer:
    app = typer.Typer(help="Show and check the configuration.", no_args_is_help=True)

    @app.command("show")
    def show(
        config: ConfigOption = None,
        as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    ) -> None:
        """Print every setting with its effective value, its variable and what it means."""
        with reported_errors(prog):
            loaded = load_from_cli(schema, default_path, config)
        rows = [
            {"key": key, "value": plain if as_json else text, "env": env_name(key), "doc": doc}
            for key, text, plain, doc in shown(loaded)
        ]
        print_rows(rows, ["key", "value", "env", "doc"], as_json=as_json)

    @app.command("check")
    def check(config: ConfigOption = None) -> None:
        """Exit 0 if the configuration loads, else 2 with a one-line reason."""
        with reported_errors(prog):
            loaded = load_from_cli(schema, default_path, config)
        cross_check = getattr(loaded, "cross_check", None)  # settings that clash together
        if cross_check is not None and (problem := cross_check()):
            typer.echo(f"{prog}: error: {problem}", err=True)
            raise typer.Exit(2)
        source = config_path(config, default_path)
        typer.echo(f"ok: {source if source else 'embedded defaults'}")

    return app
