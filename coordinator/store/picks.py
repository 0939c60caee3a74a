"""What `dormouse pick` keeps between calls: the round-robin cursor, and when each node last
took an affinity call (the power loop reads it: such a node is not idle)."""

from __future__ import annotations

import sqlalchemy as sa

from coordinator.store.dialect import upsert
from coordinator.store.models import affinity_traffic, pick_cursors


def cursor(conn: sa.Connection, strategy: str) -> str | None:
    query = sa.select(pick_cursors.c.node).where(pick_cursors.c.strategy == strategy)
    return conn.execute(query).scalar()


def set_cursor(conn: sa.Connection, strategy: str, node: str, now: float) -> None:
    statement = upsert(conn, pick_cursors)
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=["strategy"],
            set_={"node": statement.excluded.node, "at": statement.excluded.at},
        ),
        [{"strategy": strategy, "node": node, "at": now}],
    )


def note_affinity(conn: sa.Connection, node: str, now: float) -> None:
    statement = upsert(conn, affinity_traffic)
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=["node"], set_={"at": statement.excluded.at}
        ),
        [{"node": node, "at": now}],
    )


def affinity_since(conn: sa.Connection, since: float) -> dict[str, float]:
    """Nodes that took an affinity call at or after `since`, with the last one's time."""
    query = sa.select(affinity_traffic.c.node, affinity_traffic.c.at).where(
        affinity_traffic.c.at >= since
    )
    return {str(node): float(at) for node, at in conn.execute(query)}
