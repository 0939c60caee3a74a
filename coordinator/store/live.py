"""Each node's newest batch as an ingest worker stored it (`node_live`, rows of
`core.live.Live`): the leader role's view of the fleet."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from coordinator.core.live import Live
from coordinator.store.dialect import upsert
from coordinator.store.models import node_live


def write_live(conn: sa.Connection, rows: Sequence[Live]) -> None:
    """Upsert one row per node; a row only moves forward (a resent old batch, or a slower
    worker's older one, never replaces a newer one). On PostgreSQL `seen_at` is the
    server's clock, not the worker's: the leader reads rows newer than the last it saw, and
    workers on several machines must agree on what "newer" means."""
    if not rows:
        return
    statement = upsert(conn, node_live)
    if conn.dialect.name == "postgresql":
        statement = statement.values(seen_at=sa.func.extract("epoch", sa.func.clock_timestamp()))
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=["node"],
            set_={c: statement.excluded[c] for c in ("seen_at", "seq", "stream_first", "latest")},
            where=node_live.c.seq < statement.excluded.seq,
        ),
        [
            {
                "node": r.node,
                "seen_at": r.seen_at,
                "seq": r.seq,
                "stream_first": r.stream_first,
                "latest": r.latest,
            }
            for r in sorted(rows, key=lambda r: r.node)  # one lock order for every worker
        ],
    )


def read_live(conn: sa.Connection, since: float) -> list[Live]:
    """Rows stored at or after `since` (`seen_at`: the server's clock on PostgreSQL)."""
    rows = conn.execute(sa.select(node_live).where(node_live.c.seen_at >= since))
    return [Live(r.node, r.seen_at, r.seq, r.stream_first, r.latest) for r in rows]
