"""Nodes and the coordinator's own figures, as the store holds them: what `dormouse nodes`
and `dormouse status` show (the daemon writes both)."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from coordinator.core.registry import NodeView
from coordinator.store import nodes as node_rows
from coordinator.store import stats as stat_rows


@dataclass(frozen=True, slots=True)
class Status:
    figures: dict[str, tuple[float, float]]  # key -> (value, when the daemon wrote it)
    store_bytes: int | None


def listing(engine: sa.Engine) -> list[NodeView]:
    with engine.connect() as conn:
        return node_rows.load_nodes(conn)


def names(engine: sa.Engine) -> list[str]:
    with engine.connect() as conn:
        return node_rows.known_nodes(conn)


def status(engine: sa.Engine) -> Status:
    with engine.connect() as conn:
        return Status(stat_rows.read_stats(conn), stat_rows.store_size_bytes(conn))
