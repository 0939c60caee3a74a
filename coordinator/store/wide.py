"""Rollup rows read as one row on PostgreSQL: the server concatenates each field of every
matching row into one binary value (`string_agg`, all aggregates of one query level read
the rows in the same order), so a week of a thousand nodes' hours is one row on the wire,
no hex text to decode, and no sort (a `GROUP BY node` spills its sort to disk at the
default `work_mem` and takes twice as long). A long read is split by time into `SHARDS`
reads run at once on pooled connections, as Thanos and Cortex split a range query."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import sqlalchemy as sa

SHARDS = 4  # concurrent reads of one large read
SHARD_ROWS = 20_000  # buckets (nodes x steps of the tier) from which a read is split

Span = tuple[float, float]
Wide = tuple[list[str], np.ndarray, list[bytes]]  # per row its node and bucket; each field


@dataclass(frozen=True)
class Scan:
    """What to read of a tier: `fields` are SQL bytea expressions that are never NULL on a
    row where `where` holds (string_agg skips a NULL, which would shift the rows after
    it)."""

    table: sa.Table
    fields: tuple[str, ...]
    where: str = "TRUE"


def read(
    conn: sa.Connection, scan: Scan, span: Span, nodes: Sequence[str] | int, width: float
) -> Wide | None:
    """(each row's node, each row's bucket start, each field concatenated in that row
    order) over the rows with a bucket start in `span` of the nodes `nodes` (or of every
    node, when `nodes` is how many there are); None when no row matches. `width`: the
    tier's bucket, to size the read."""
    listed = None if isinstance(nodes, int) else nodes
    count = nodes if isinstance(nodes, int) else len(nodes)
    if count * (span[1] - span[0]) / width < SHARD_ROWS:
        parts = [_read(conn, scan, span, listed)]
    else:
        edges = np.linspace(*span, SHARDS + 1).tolist()

        def shard(part: Span) -> Wide | None:
            with conn.engine.connect() as own:
                return _read(own, scan, part, listed)

        with ThreadPoolExecutor(SHARDS) as pool:
            parts = list(pool.map(shard, itertools.pairwise(edges)))
    found = [p for p in parts if p is not None]
    if not found:
        return None
    return (
        [name for part in found for name in part[0]],
        np.concatenate([part[1] for part in found]),
        [b"".join(part[2][i] for part in found) for i in range(len(scan.fields))],
    )


def _read(conn: sa.Connection, scan: Scan, span: Span, nodes: Sequence[str] | None) -> Wide | None:
    """One read, one row back. Node names (letters, digits, `._-`, as topics allow) are
    joined by newlines."""
    aggregated = "".join(f", string_agg({field}, ''::bytea)" for field in scan.fields)
    name = conn.dialect.identifier_preparer.quote(scan.table.name)
    sql = (
        f"SELECT string_agg(node, E'\\n'), string_agg(float8send(bucket), ''::bytea)"  # noqa: S608 - names quoted from the schema
        f"{aggregated} FROM {name} WHERE bucket >= %s AND bucket < %s AND ({scan.where})"
    )
    params: list[object] = list(span)
    if nodes is not None:
        sql += " AND node = ANY(%s)"
        params.append(list(nodes))
    with conn.connection.driver_connection.cursor(binary=True) as cursor:  # type: ignore[union-attr]
        cursor.execute(sql, params)
        text, starts, *values = cursor.fetchone()
    if text is None:
        return None
    return (
        text.split("\n"),
        np.frombuffer(starts, ">f8").astype(np.float64),
        [bytes(v) for v in values],
    )
