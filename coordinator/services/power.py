"""Operator power requests (`dormouse sleep | wake | clear`) and the power-event log.

Requests go through the store: the CLI writes one, the coordinator carries it out on its next
pass (checking the policy unless forced) and writes the outcome, which the caller waits for.
"""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa

from coordinator.store import nodes as node_rows
from coordinator.store import power as power_rows
from coordinator.store.power import PowerEvent
from shared.errors import DormouseError, NotFound

POLL_S = 0.2


class PowerError(DormouseError):
    """A power request that cannot be made; the message says why."""


class UnknownNode(PowerError, NotFound):
    """A node the store has never heard from."""


def request(engine: sa.Engine, node: str, action: str, *, force: bool, now: float) -> int:
    """Queue the request for the coordinator; returns its id."""
    with engine.begin() as conn:
        if node not in node_rows.known_nodes(conn):
            raise UnknownNode(f"unknown node {node!r} (see `dormouse nodes`)")
        return power_rows.request(conn, node, action, force=force, now=now)


def outcome(engine: sa.Engine, request_id: int) -> str | None:
    with engine.connect() as conn:
        return power_rows.request_outcome(conn, request_id)


def await_outcome(engine: sa.Engine, request_id: int, wait_s: float) -> str | None:
    """The coordinator's answer ("done...", "refused: ...", ...), or None after `wait_s`."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        answer = outcome(engine, request_id)
        if answer is not None:
            return answer
        time.sleep(POLL_S)
    return None


def events(engine: sa.Engine, node: str | None, limit: int) -> list[PowerEvent]:
    with engine.connect() as conn:
        if node is not None and node not in node_rows.known_nodes(conn):
            raise UnknownNode(f"unknown node {node!r} (see `dormouse nodes`)")
        return power_rows.events(conn, node=node, limit=limit)


def event_json(event: PowerEvent) -> dict[str, Any]:
    """One event as `dormouse power-events --json` and the API show it (time: epoch s)."""
    return {"time": event.ts, "node": event.node, "kind": event.kind, "reason": event.reason}
