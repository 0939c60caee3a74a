"""`dormouse config`: the shared show/check commands over the coordinator's settings."""

from __future__ import annotations

import typer

from coordinator.cli.common import PROG
from coordinator.settings import DEFAULT_CONFIG_PATH, CoordinatorConfig
from shared.edge.config_cli import config_app

app: typer.Typer = config_app(CoordinatorConfig, DEFAULT_CONFIG_PATH, PROG)
