"""`dormouse install`: the coordinator's systemd unit and a commented
`/etc/dormouse/coordinator.toml`, under a root, as `dormouse-agent install` does for agents."""

from __future__ import annotations

from pathlib import Path

import typer

from coordinator.cli.common import PROG, load
from coordinator.settings import CoordinatorConfig
from shared.edge.console import reported_errors
from shared.edge.install import ConfigFileOption, Daemon, RootOption, install, say_installed
from shared.unitfiles import COORDINATOR

COORDINATOR_DAEMON = Daemon(
    program="dormouse",
    unit_name="dormouse-coordinator.service",
    template=COORDINATOR,
    config_path=Path("etc/dormouse/coordinator.toml"),
    defaults=CoordinatorConfig,
    docs="docs/coordinator.md",
)
KEY = "/etc/dormouse/command.key"  # the unit's LoadCredential= source


def install_command(root: RootOption = Path("/"), config: ConfigFileOption = None) -> None:
    """Write the coordinator's systemd unit and a commented config; print how to start it."""
    if config is not None:
        load(config)  # refuse a config the coordinator would refuse, before installing it
    with reported_errors(PROG):
        done = install(COORDINATOR_DAEMON, root, config)
    key_there = (root / KEY.lstrip("/")).exists()
    say_installed(
        done,
        *([] if key_there else [f"dormouse key generate --out {KEY}  (then copy it to agents)"]),
        "set db (PostgreSQL for a real fleet) and broker in the config, and run",
        "systemctl daemon-reload && systemctl enable --now dormouse-coordinator",
    )


def register(root: typer.Typer) -> None:
    root.command("install", rich_help_panel="Setup")(install_command)
