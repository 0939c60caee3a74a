"""`dormouse sleep | wake | clear | power-events`: operator power control.

Requests go through the store: the CLI writes one, the coordinator carries it out on its next
pass (checking the policy unless `--force`) and writes the outcome, which the CLI waits for.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import sqlalchemy as sa
import typer

from coordinator.cli.common import DbOption, JsonOption, fail, positive_duration, store
from coordinator.services.history import iso
from coordinator.store import nodes as node_rows
from coordinator.store import power as power_rows
from shared.edge.config_cli import ConfigOption
from shared.edge.console import print_rows

REFUSED = 3
NO_ANSWER = 1
ForceOption = Annotated[bool, typer.Option("--force", help="override the power policy")]
WaitOption = Annotated[str, typer.Option("--wait", help="how long to wait for the coordinator")]
EVENT_COLUMNS = ["time", "node", "kind", "reason"]


def register(app: typer.Typer) -> None:
    app.command("sleep")(sleep)
    app.command("wake")(wake)
    app.command("clear")(clear)
    app.command("power-events")(power_events)


def sleep(
    node: str,
    force: ForceOption = False,
    wait: WaitOption = "10s",
    config: ConfigOption = None,
    db: DbOption = None,
) -> None:
    """Put NODE to sleep now (refused with the reason if the policy forbids it)."""
    _request(node, "sleep", force, wait, config, db)


def wake(
    node: str,
    force: ForceOption = False,
    wait: WaitOption = "10s",
    config: ConfigOption = None,
    db: DbOption = None,
) -> None:
    """Wake NODE now (Wake-on-LAN, IPMI or the wake command)."""
    _request(node, "wake", force, wait, config, db)


def clear(
    node: str, wait: WaitOption = "10s", config: ConfigOption = None, db: DbOption = None
) -> None:
    """Clear a failed NODE: it may be woken and used again."""
    _request(node, "clear", False, wait, config, db)


def _request(
    node: str, action: str, force: bool, wait: str, config: Path | None, db: str | None
) -> None:
    wait_s = positive_duration(wait, "--wait")
    engine = store(config, db)
    with engine.begin() as conn:
        if node not in {v.name for v in node_rows.load_nodes(conn)}:
            fail(f"unknown node {node!r} (see `dormouse nodes`)")
        request_id = power_rows.request(conn, node, action, force=force, now=time.time())
    outcome = _await(engine, request_id, wait_s)
    if outcome is None:
        fail(
            f"{action} {node}: queued, but no coordinator answered within {wait:s} "
            "(is `dormouse run` running?); it expires unanswered after a minute",
            NO_ANSWER,
        )
    if not outcome.startswith("done"):
        fail(f"{action} {node}: {outcome}", REFUSED if outcome.startswith("refused") else 1)
    typer.echo(f"{action} {node}: {outcome}")


def _await(engine: sa.Engine, request_id: int, wait_s: float) -> str | None:
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            outcome = power_rows.request_outcome(conn, request_id)
        if outcome is not None:
            return outcome
        time.sleep(0.2)
    return None


def power_events(
    node: Annotated[str | None, typer.Option("--node", help="only this node")] = None,
    limit: Annotated[int, typer.Option("--limit", help="newest N")] = 50,
    config: ConfigOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Sleeps, wakes, failures and operator requests, with their reasons, oldest first."""
    with store(config, db).connect() as conn:
        found = power_rows.events(conn, node=node, limit=limit)
    rows = [
        {"time": e.ts if as_json else iso(e.ts), "node": e.node, "kind": e.kind, "reason": e.reason}
        for e in found
    ]
    print_rows(rows, EVENT_COLUMNS, as_json=as_json)
