"""The coordinator's figures (`dormouse status`) and the store's size."""

from __future__ import annotations

import sqlalchemy as sa

from coordinator.store.dialect import upsert
from coordinator.store.models import stats


def write_stats(conn: sa.Connection, values: dict[str, float], now: float) -> None:
    statement = upsert(conn, stats)
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=["key"],
            set_={"value": statement.excluded.value, "updated_at": statement.excluded.updated_at},
        ),
        [{"key": k, "value": v, "updated_at": now} for k, v in values.items()],
    )


def read_stats(conn: sa.Connection) -> dict[str, tuple[float, float]]:
    return {k: (v, at) for k, v, at in conn.execute(sa.select(stats))}


def store_size_bytes(conn: sa.Connection) -> int | None:
    if conn.dialect.name == "postgresql":
        return int(
            conn.execute(sa.text("SELECT pg_database_size(current_database())")).scalar_one()
        )
    pages = conn.execute(sa.text("PRAGMA page_count")).scalar_one()
    size = conn.execute(sa.text("PRAGMA page_size")).scalar_one()
    return int(pages) * int(size)
