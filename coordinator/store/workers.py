"""The `dormouse run` processes sharing a store: each writes its own row every few
seconds (its role and figures), so `dormouse status` can show the ingest workers and what
each has stored."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from coordinator.store.dialect import upsert
from coordinator.store.models import workers


@dataclass(frozen=True, slots=True)
class Worker:
    id: str
    role: str
    started_at: float
    seen_at: float
    figures: dict[str, float]


def beat(conn: sa.Connection, worker: Worker) -> None:
    statement = upsert(conn, workers).values(
        id=worker.id,
        role=worker.role,
        started_at=worker.started_at,
        seen_at=worker.seen_at,
        figures=worker.figures,
    )
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=["id"],
            set_={c: statement.excluded[c] for c in ("role", "started_at", "seen_at", "figures")},
        )
    )


def recent(conn: sa.Connection, since: float) -> list[Worker]:
    """Processes heard from at or after `since`, by id."""
    rows = conn.execute(sa.select(workers).where(workers.c.seen_at >= since).order_by("id"))
    return [Worker(r.id, r.role, r.started_at, r.seen_at, dict(r.figures)) for r in rows]


def forget(conn: sa.Connection, before: float) -> int:
    """Rows of processes gone since before `before` (retention)."""
    return int(conn.execute(sa.delete(workers).where(workers.c.seen_at < before)).rowcount)
