"""Operators' drains and the GPU health event log.

A drain is a row per node (`gpu_index` -1) or per GPU; the coordinator reads them every pass,
so `dormouse drain` acts within a pass whether or not the coordinator runs on this machine.
Every drain, undrain and health change the coordinator saw is also an event (`gpu_events`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

import sqlalchemy as sa

from coordinator.core.registry import GpuHealthChange
from coordinator.store.dialect import upsert
from coordinator.store.models import drains, gpu_events

NODE = -1


@dataclass(frozen=True, slots=True)
class GpuEvent:
    ts: float
    node: str
    gpu_index: int  # -1: the whole node
    kind: str  # ok, degraded, failed, drain, undrain
    reason: str


def drain(conn: sa.Connection, node: str, gpu: int, reason: str, now: float) -> None:
    row = {"node": node, "gpu_index": gpu, "reason": reason, "since": now}
    statement = upsert(conn, drains).values(**row)
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=["node", "gpu_index"], set_={"reason": reason, "since": now}
        )
    )
    _event(conn, GpuEvent(now, node, gpu, "drain", reason))


def undrain(conn: sa.Connection, node: str, gpu: int, now: float) -> bool:
    """False when there was no such drain."""
    done = conn.execute(
        sa.delete(drains).where(drains.c.node == node, drains.c.gpu_index == gpu)
    ).rowcount
    if done:
        _event(conn, GpuEvent(now, node, gpu, "undrain", ""))
    return bool(done)


def all_drains(conn: sa.Connection) -> dict[str, dict[int, str]]:
    """Node -> GPU index (-1: the node) -> reason."""
    found: dict[str, dict[int, str]] = defaultdict(dict)
    for row in conn.execute(sa.select(drains.c.node, drains.c.gpu_index, drains.c.reason)):
        found[row.node][row.gpu_index] = row.reason
    return dict(found)


def record_health(conn: sa.Connection, changes: Iterable[GpuHealthChange]) -> int:
    rows = [
        {"ts": c.ts, "node": c.node, "gpu_index": c.gpu_index, "kind": c.kind, "reason": c.reason}
        for c in changes
    ]
    if rows:
        conn.execute(sa.insert(gpu_events), rows)
    return len(rows)


def events(conn: sa.Connection, node: str | None = None, limit: int = 50) -> list[GpuEvent]:
    """The newest events first."""
    query = sa.select(gpu_events).order_by(gpu_events.c.ts.desc(), gpu_events.c.id.desc())
    if node is not None:
        query = query.where(gpu_events.c.node == node)
    return [
        GpuEvent(r.ts, r.node, r.gpu_index, r.kind, r.reason)
        for r in conn.execute(query.limit(limit))
    ]


def _event(conn: sa.Connection, event: GpuEvent) -> None:
    conn.execute(
        sa.insert(gpu_events).values(
            ts=event.ts,
            node=event.node,
            gpu_index=event.gpu_index,
            kind=event.kind,
            reason=event.reason,
        )
    )
