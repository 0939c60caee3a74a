"""HTTP API tokens as rows: id, digest, scope, name, when created (never the token)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from coordinator.store.models import api_tokens


def insert(conn: sa.Connection, row: dict[str, object]) -> None:
    conn.execute(sa.insert(api_tokens), [row])


def holder(conn: sa.Connection, digest: str) -> tuple[str, str] | None:
    """(scope, name) of the token with this digest."""
    query = sa.select(api_tokens.c.scope, api_tokens.c.name).where(api_tokens.c.digest == digest)
    row = conn.execute(query).first()
    return None if row is None else (row.scope, row.name)


def listing(conn: sa.Connection) -> list[dict[str, Any]]:
    columns = (api_tokens.c.id, api_tokens.c.scope, api_tokens.c.name, api_tokens.c.created_at)
    query = sa.select(*columns).order_by(api_tokens.c.created_at)
    return [dict(row._mapping) for row in conn.execute(query)]


def delete(conn: sa.Connection, token_id: str) -> bool:
    result = conn.execute(sa.delete(api_tokens).where(api_tokens.c.id == token_id))
    return result.rowcount > 0
