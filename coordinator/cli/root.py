"""The `dormouse` app, composed from one module per noun.

`coordinator/cli/` holds the commands that read or change the store through the services;
`coordinator/daemon/entry.py` the two that start long-running work (`run`, `demo`). Each
is imported only when it runs (`coordinator/cli/lazy.py`): the table below is what
`dormouse --help` shows without importing any of them.
"""

from __future__ import annotations

from typing import ClassVar

import typer

from coordinator import __version__
from coordinator.cli.lazy import Lazy, LazyGroup
from shared.edge.console import add_version_flag

PROG = "dormouse"
VERSION = f"{PROG} {__version__}"
FLEET, JOBS, POWER, REPORTS, DAEMON, SETUP = "Fleet", "Jobs", "Power", "Reports", "Daemon", "Setup"
NODES, JOBS_CLI = "coordinator.cli.nodes", "coordinator.cli.jobs"
POWER_CLI = "coordinator.cli.power"
RUN = "coordinator.daemon.entry:register"

COMMANDS = {
    "node": Lazy(f"{NODES}:shortcuts", "Same as `nodes show NAME`.", FLEET),
    "drain": Lazy(f"{NODES}:shortcuts", "Same as `nodes drain NODE`.", FLEET),
    "undrain": Lazy(f"{NODES}:shortcuts", "Same as `nodes undrain NODE`.", FLEET),
    "status": Lazy(
        "coordinator.cli.status:register",
        "Messages received, stored and dropped (by reason), lag and store size.",
        FLEET,
    ),
    "nodes": Lazy(f"{NODES}:app", "Every node: state, when last seen, its latest sample.", FLEET),
    "submit": Lazy(
        f"{JOBS_CLI}:shortcuts",
        "Queue a job; prints its id and when it should start and finish.",
        JOBS,
    ),
    "job": Lazy(f"{JOBS_CLI}:shortcuts", "One job in full, and its event log.", JOBS),
    "cancel": Lazy(
        f"{JOBS_CLI}:shortcuts",
        "Cancel a job: at once if pending; on a node, SIGTERM then SIGKILL after a grace.",
        JOBS,
    ),
    "pick": Lazy(
        f"{JOBS_CLI}:shortcuts",
        "The node a stateless request should go to now (exit 3: none). Least connections by "
        "default; round-robin, affinity (--key, bounded load) or p2c (power of two choices).",
        JOBS,
    ),
    "jobs": Lazy(
        f"{JOBS_CLI}:app", "Jobs, newest first; subcommands queue, show and cancel them.", JOBS
    ),
    "sleep": Lazy(
        f"{POWER_CLI}:shortcuts",
        "Put NODE to sleep now (refused with the reason if the policy forbids it).",
        POWER,
    ),
    "wake": Lazy(
        f"{POWER_CLI}:shortcuts", "Wake NODE now (Wake-on-LAN, IPMI or the wake command).", POWER
    ),
    "clear": Lazy(
        f"{POWER_CLI}:shortcuts", "Clear a failed NODE: it may be woken and used again.", POWER
    ),
    "power-events": Lazy(
        f"{POWER_CLI}:shortcuts",
        "Sleeps, wakes, failures and operator requests, with their reasons, oldest first.",
        POWER,
    ),
    "power": Lazy(f"{POWER_CLI}:app", "Sleep, wake and clear nodes; the power-event log.", POWER),
    "history": Lazy(
        "coordinator.cli.history:register",
        "A time series of one metric of one node, or one per group of nodes (--by), from the "
        "coarsest tier that serves the step.",
        REPORTS,
    ),
    "report": Lazy(
        "coordinator.cli.report:register",
        "kWh, cost, awake/asleep hours, utilisation and energy saved by sleeping.",
        REPORTS,
    ),
    "slurm": Lazy(
        "coordinator.cli.slurm:app", "Slurm's power programs (suspend, resume, resume-fail).", POWER
    ),
    "simulate": Lazy(
        "coordinator.cli.simulate:register",
        "Replay a job trace through dormouse's own placement and power policy.",
        REPORTS,
    ),
    "run": Lazy(RUN, "Run the coordinator daemon: ingest telemetry into the store.", DAEMON),
    "demo": Lazy(
        RUN, "A fleet on this machine: broker, coordinator, agents, jobs, sleep and wake.", DAEMON
    ),
    "install": Lazy(
        "coordinator.cli.install:register",
        "Write the coordinator's systemd unit and a commented config; print how to start it.",
        SETUP,
    ),
    "config": Lazy("coordinator.cli.config:app", "Show and check the configuration.", SETUP),
    "key": Lazy("coordinator.cli.key:app", "Manage the HMAC key that signs commands.", SETUP),
    "db": Lazy("coordinator.cli.db:app", "The SQL store: schema migrations.", SETUP),
    "token": Lazy("coordinator.cli.token:app", "Bearer tokens for the HTTP API.", SETUP),
}


class Root(LazyGroup):
    COMMANDS: ClassVar[dict[str, Lazy]] = COMMANDS


app = typer.Typer(
    name=PROG,
    cls=Root,
    help="Run a fleet of CPU/GPU servers cheaply.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
add_version_flag(app, VERSION)


@app.command("version", rich_help_panel=SETUP)
def version() -> None:
    """Print the version."""
    typer.echo(VERSION)
