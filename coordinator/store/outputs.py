"""Output requests (`dormouse jobs logs`): the requester writes one, the leader sends it to
the job's node as a signed `FetchOutput`, whoever receives the node's `job_output` event
writes the answer into it, and the requester reads and deletes it. Rows nobody answered
are deleted by the leader after `TTL_S`."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from coordinator.store.models import output_requests
from shared.messages import Event

TTL_S = 60.0


@dataclass(frozen=True, slots=True)
class OutputRequest:
    id: int
    ts: float
    job_id: str
    node: str
    stream: str
    offset: int


@dataclass(frozen=True, slots=True)
class Answer:
    output: str
    start: int
    next: int
    size: int
    detail: str


def ask(
    conn: sa.Connection, job_id: str, node: str, stream: str, *, offset: int, now: float
) -> int:
    row = {"ts": now, "job_id": job_id, "node": node, "stream": stream, "offset": offset}
    inserted = conn.execute(output_requests.insert().values(row).returning(output_requests.c.id))
    return int(inserted.scalar_one())


def unsent(conn: sa.Connection, now: float) -> list[OutputRequest]:
    """Requests for the leader to send, oldest first. Expired ones are deleted, only when
    there are some: the leader reads this every pass, and an idle pass should write nothing."""
    rows = conn.execute(sa.select(output_requests).order_by(output_requests.c.id)).all()
    expired = [r.id for r in rows if r.ts < now - TTL_S]
    if expired:
        conn.execute(output_requests.delete().where(output_requests.c.id.in_(expired)))
    return [
        OutputRequest(r.id, r.ts, r.job_id, r.node, r.stream, r.offset)
        for r in rows
        if r.sent_at is None and r.ts >= now - TTL_S
    ]


def sent(conn: sa.Connection, request_id: int, now: float, detail: str | None = None) -> None:
    """Sent, or (with `detail`) answered here: the node cannot be asked now."""
    values: dict[str, object] = {"sent_at": now}
    if detail is not None:
        values |= {"answered_at": now, "detail": detail}
    conn.execute(output_requests.update().where(output_requests.c.id == request_id).values(values))


def answer(conn: sa.Connection, event: Event) -> bool:
    """The node's `job_output` into its request (False: no such request, say expired)."""
    done = conn.execute(
        output_requests.update()
        .where(output_requests.c.id == event.request, output_requests.c.node == event.node)
        .values(
            answered_at=event.ts,
            output=event.output,
            output_offset=event.output_offset,
            output_next=event.output_next,
            output_size=event.output_size,
            detail=event.detail or None,
        )
    )
    return done.rowcount > 0


def take(conn: sa.Connection, request_id: int) -> Answer | None:
    """The answer, once there is one; the request is deleted with it."""
    row = conn.execute(
        sa.select(output_requests).where(
            output_requests.c.id == request_id, output_requests.c.answered_at.is_not(None)
        )
    ).first()
    if row is None:
        return None
    conn.execute(output_requests.delete().where(output_requests.c.id == request_id))
    return Answer(
        row.output or "",
        row.output_offset or 0,
        row.output_next or 0,
        row.output_size or 0,
        row.detail or "",
    )


def forget(conn: sa.Connection, request_id: int) -> None:
    conn.execute(output_requests.delete().where(output_requests.c.id == request_id))
