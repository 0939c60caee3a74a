"""`dormouse power [sleep | wake | clear | events]` (and the shortcuts `sleep`, `wake`, `clear`,
`power-events`): operator power control through the power service."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from coordinator.cli.common import PROG, DbOption, JsonOption, fail, positive_duration, store
from coordinator.services import power as power_service
from shared.edge.config_cli import ConfigOption
from shared.edge.console import print_rows, reported_errors
from shared.units import iso

REFUSED = 3
NO_ANSWER = 1
PANEL = "Power"
ForceOption = Annotated[bool, typer.Option("--force", help="override the power policy")]
WaitOption = Annotated[
    str, typer.Option("--wait", metavar="DURATION", help="how long to wait for the coordinator")
]
NodeArgument = Annotated[str, typer.Argument(metavar="NODE", help="node name")]
EVENT_COLUMNS = ["time", "node", "kind", "reason"]
app = typer.Typer(help="Sleep, wake and clear nodes; the power-event log.", no_args_is_help=True)


@app.command("sleep")
def sleep(
    node: NodeArgument,
    force: ForceOption = False,
    wait: WaitOption = "10s",
    config: ConfigOption = None,
    db: DbOption = None,
) -> None:
    """Put NODE to sleep now (refused with the reason if the policy forbids it)."""
    _request(node, "sleep", force, wait, config, db)


@app.command("wake")
def wake(
    node: NodeArgument,
    force: ForceOption = False,
    wait: WaitOption = "10s",
    config: ConfigOption = None,
    db: DbOption = None,
) -> None:
    """Wake NODE now (Wake-on-LAN, IPMI or the wake command)."""
    _request(node, "wake", force, wait, config, db)


@app.command("clear")
def clear(
    node: NodeArgument, wait: WaitOption = "10s", config: ConfigOption = None, db: DbOption = None
) -> None:
    """Clear a failed NODE: it may be woken and used again."""
    _request(node, "clear", False, wait, config, db)


def _request(
    node: str, action: str, force: bool, wait: str, config: Path | None, db: str | None
) -> None:
    wait_s = positive_duration(wait, "--wait")
    engine = store(config, db)
    with reported_errors(PROG):
        request_id = power_service.request(engine, node, action, force=force, now=time.time())
    outcome = power_service.await_outcome(engine, request_id, wait_s)
    if outcome is None:
        fail(
            f"{action} {node}: queued, but no coordinator answered within {wait:s} "
            "(is `dormouse run` running?); it expires unanswered after a minute",
            NO_ANSWER,
        )
    if not outcome.startswith("done"):
        fail(f"{action} {node}: {outcome}", REFUSED if outcome.startswith("refused") else 1)
    typer.echo(f"{action} {node}: {outcome}")


@app.command("events")
def power_events(
    node: Annotated[
        str | None, typer.Option("--node", metavar="NODE", help="only this node")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", help="newest N")] = 50,
    config: ConfigOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Sleeps, wakes, failures and operator requests, with their reasons, oldest first."""
    engine = store(config, db)
    with reported_errors(PROG):
        found = power_service.events(engine, node, limit)
    rows = [power_service.event_json(e) for e in found]
    if not as_json:
        rows = [r | {"time": iso(r["time"])} for r in rows]
    print_rows(rows, EVENT_COLUMNS, as_json=as_json)


def shortcuts(root: typer.Typer) -> None:
    """The top-level names operators and scripts already use."""
    for name, command in (
        ("sleep", sleep),
        ("wake", wake),
        ("clear", clear),
        ("power-events", power_events),
    ):
        root.command(name, rich_help_panel=PANEL)(command)
