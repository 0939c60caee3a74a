"""The commands that start long-running work: `dormouse run` and `dormouse demo`.

They are the daemon's face on the command line, so they live here rather than in `cli/`
(which never imports the daemon); the daemon itself (MQTT, prometheus-client, amqtt) is
imported only when one of them runs, so every other command starts without it.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.live import Live

from coordinator.cli.common import PROG, DbOption, fail, load, positive_duration
from coordinator.cli.demo_view import frame, lines, show_summary
from shared.edge import logs
from shared.edge.config_cli import ConfigOption
from shared.edge.console import reported_errors

MAX_SIMULATED = 9


def run(
    config: ConfigOption = None,
    broker: Annotated[
        str | None, typer.Option(metavar="URL", help="MQTT broker, e.g. mqtt://host:1883")
    ] = None,
    db: DbOption = None,
    role: Annotated[
        str | None,
        typer.Option(
            metavar="all|ingest|leader",
            help="all (default), ingest (telemetry to the store) or leader; "
            "ingest and leader need PostgreSQL (docs/scale-out.md)",
        ),
    ] = None,
) -> None:
    """Run the coordinator daemon: ingest telemetry into the store."""
    from coordinator.daemon.main import serve  # noqa: PLC0415 - only `run` needs the daemon

    settings = load(config, broker=broker, db=db, role=role)
    if problem := settings.cross_check():
        fail(problem)
    logs.configure(settings.log_level)
    with reported_errors(PROG):
        asyncio.run(serve(settings))


def demo(
    duration: Annotated[
        str, typer.Option("--duration", metavar="DURATION", help="how long, e.g. 60s")
    ] = "60s",
    workdir: Annotated[Path, typer.Option("--dir", help="working directory (store, logs)")] = Path(
        "dormouse-demo"
    ),
    nodes: Annotated[int, typer.Option("--nodes", help="simulated nodes beside this host")] = 3,
    as_json: Annotated[bool, typer.Option("--json", help="print the summary as JSON")] = False,
) -> None:
    """A fleet on this machine: broker, coordinator, agents, jobs, sleep and wake."""
    from coordinator.daemon.demo import Plan, run_demo  # noqa: PLC0415 - the daemon, on demand

    seconds = positive_duration(duration, "--duration")
    if not 1 <= nodes <= MAX_SIMULATED:
        fail(f"--nodes must be 1 to {MAX_SIMULATED}")
    console = Console(stderr=as_json)
    plan = Plan(workdir.resolve(), seconds, nodes)

    def announce(url: str) -> None:
        console.print(f"web console: {url}", markup=False, soft_wrap=True)

    if console.is_terminal:
        with Live(console=console, refresh_per_second=2, transient=False) as live:
            result = asyncio.run(
                run_demo(plan, lambda v, j, left: live.update(frame(v, j, left)), announce)
            )
    else:
        result = asyncio.run(run_demo(plan, lines(console), announce))
    if as_json:
        typer.echo(json.dumps(result, indent=2))
    else:
        show_summary(console, result, plan.workdir)


def register(root: typer.Typer) -> None:
    root.command("run", rich_help_panel="Daemon")(run)
    root.command("demo", rich_help_panel="Daemon")(demo)
