"""Power events (every sleep/wake decision and observed transition, with its reason) and
operator requests (`dormouse sleep/wake/clear`), which the coordinator carries out."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from coordinator.store.models import power_events, power_requests

WAKE_TIMES = ("resumed", "resumed_late")  # power events whose value is a measured wake (s)


@dataclass(frozen=True, slots=True)
class PowerEvent:
    ts: float
    node: str
    kind: str
    reason: str
    value: float | None = None


@dataclass(frozen=True, slots=True)
class PowerRequest:
    id: int
    ts: float
    node: str
    action: str
    force: bool
    source: str = "operator"  # who asked: an operator, or Slurm's programs


def log_events(conn: sa.Connection, events: list[PowerEvent]) -> None:
    if events:
        conn.execute(
            power_events.insert(),
            [
                {
                    "ts": e.ts,
                    "node": e.node,
                    "kind": e.kind,
                    "reason": e.reason[:512],
                    "value": e.value,
                }
                for e in events
            ],
        )


def events(
    conn: sa.Connection,
    *,
    since: float = 0.0,
    node: str | None = None,
    kinds: tuple[str, ...] = (),
    limit: int | None = None,
) -> list[PowerEvent]:
    """Oldest first (the newest `limit`, when given)."""
    query = sa.select(power_events).where(power_events.c.ts >= since)
    if node is not None:
        query = query.where(power_events.c.node == node)
    if kinds:
        query = query.where(power_events.c.kind.in_(kinds))
    query = query.order_by(power_events.c.ts.desc(), power_events.c.id.desc())
    rows = conn.execute(query.limit(limit) if limit else query).mappings()
    found = [PowerEvent(r["ts"], r["node"], r["kind"], r["reason"], r["value"]) for r in rows]
    return found[::-1]


def request(
    conn: sa.Connection,
    node: str,
    action: str,
    *,
    force: bool,
    now: float,
    source: str = "operator",
) -> int:
    row = {"ts": now, "node": node, "action": action, "force": force, "source": source}
    result = conn.execute(power_requests.insert().values(row).returning(power_requests.c.id))
    return int(result.scalar_one())


def open_requests(conn: sa.Connection) -> list[PowerRequest]:
    query = (
        sa.select(power_requests)
        .where(power_requests.c.done_at.is_(None))
        .order_by(power_requests.c.id)
    )
    return [
        PowerRequest(r["id"], r["ts"], r["node"], r["action"], r["force"], r["source"])
        for r in conn.execute(query).mappings()
    ]


def finish_request(conn: sa.Connection, request_id: int, outcome: str, now: float) -> None:
    conn.execute(
        power_requests.update()
        .where(power_requests.c.id == request_id)
        .values(done_at=now, outcome=outcome[:512])
    )


def request_outcome(conn: sa.Connection, request_id: int) -> str | None:
    query = sa.select(power_requests.c.outcome).where(power_requests.c.id == request_id)
    return conn.execute(query).scalar_one_or_none()
