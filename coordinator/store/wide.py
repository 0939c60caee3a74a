"""Rollup rows read as one row on PostgreSQL: the server concatenates each field of every
matching row into one binary value (`string_agg`, all aggregates of one query level read
the rows in the same order), so a week of a thousand nodes' hours is one row on the wire,
no hex text to decode, and no sort (a `GROUP BY node` spills its sort to disk at the
default `work_mem` and takes twice as long). A long read is split by time into `SHARDS`
reads run at once on pooled connections, as Thanos and Cortex split a range query.

Each row's node comes as a 64-bit hash of its name (`hashtextextended`, PostgreSQL 11+),
numbered on this side, and the names of the few distinct hashes are looked up once: a month
of a thousand nodes' hours is 720,000 rows, and 720,000 Python strings cost more time and
memory than the rest of the read. Two names sharing a hash (about 1 in 10^11 for 20,000
nodes) read the names themselves instead."""

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
# per row its node's number; the names by number; per row its bucket; each field
Wide = tuple[np.ndarray, list[str], np.ndarray, list[bytes]]
Part = tuple[np.ndarray | list[str], np.ndarray, list[bytes]]  # one read's, node as hash or name
NAME_HASH = "hashtextextended({}, 0)"


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
    """(each row's node number, the node names by number, each row's bucket start, each
    field concatenated in that row order) over the rows with a bucket start in `span` of
    the nodes `nodes` (or of every node, when `nodes` is how many there are); None when no
    row matches. `width`: the tier's bucket, to size the read."""
    found = _parts(conn, scan, span, nodes, width, hashed=True)
    if not found:
        return None
    hashes = np.concatenate([p[0] for p in found])
    distinct, code = np.unique(hashes, return_inverse=True)
    names = _names(conn, scan, span, distinct)
    if names is None:  # two names, one hash: read the names themselves
        found = _parts(conn, scan, span, nodes, width, hashed=False)
        codes: dict[str, int] = {}
        code = np.concatenate([numbered(p[0], codes) for p in found])  # type: ignore[arg-type]
        names = list(codes)
    return (
        code.astype(np.int64),
        names,
        np.concatenate([part[1] for part in found]),
        [b"".join(part[2][i] for part in found) for i in range(len(scan.fields))],
    )


def numbered(names: list[str], codes: dict[str, int]) -> np.ndarray:
    """A number per name (`codes` gets one per new name), looked up once per run of the
    same name: rows come grouped by node (the key leads with it)."""
    if not names:
        return np.zeros(0, np.int64)
    every = np.array(names, dtype=object)
    heads = np.flatnonzero(np.concatenate(([True], every[1:] != every[:-1])))
    each = np.fromiter((codes.setdefault(n, len(codes)) for n in every[heads]), np.int64)
    return np.repeat(each, np.diff(np.append(heads, len(every))))


def _parts(
    conn: sa.Connection,
    scan: Scan,
    span: Span,
    nodes: Sequence[str] | int,
    width: float,
    *,
    hashed: bool,
) -> list[Part]:
    listed = None if isinstance(nodes, int) else nodes
    count = nodes if isinstance(nodes, int) else len(nodes)
    if count * (span[1] - span[0]) / width < SHARD_ROWS:
        parts = [_read(conn, scan, span, listed, hashed)]
    else:
        edges = np.linspace(*span, SHARDS + 1).tolist()

        def shard(part: Span) -> Part | None:
            with conn.engine.connect() as own:
                return _read(own, scan, part, listed, hashed)

        with ThreadPoolExecutor(SHARDS) as pool:
            parts = list(pool.map(shard, itertools.pairwise(edges)))
    return [p for p in parts if p is not None]


def _names(conn: sa.Connection, scan: Scan, span: Span, hashes: np.ndarray) -> list[str] | None:
    """The name of each hash, in order, from the node rows (and the tier, for a node no
    longer listed); None when a hash has two."""
    wanted = [int(h) for h in hashes]
    of: dict[int, set[str]] = {}
    of_name = NAME_HASH.format("name")
    nodes = f"SELECT name, {of_name} FROM nodes WHERE {of_name} = ANY(%s)"  # noqa: S608 - constant
    table = conn.dialect.identifier_preparer.quote(scan.table.name)
    rest = (
        f"SELECT DISTINCT node, {NAME_HASH.format('node')} FROM {table} "  # noqa: S608 - quoted
        f"WHERE bucket >= %s AND bucket < %s AND {NAME_HASH.format('node')} = ANY(%s)"
    )
    with conn.connection.driver_connection.cursor() as cursor:  # type: ignore[union-attr]
        for name, value in cursor.execute(nodes, [wanted]).fetchall():
            of.setdefault(value, set()).add(name)
        missing = [h for h in wanted if h not in of]
        if missing:
            for name, value in cursor.execute(rest, [*span, missing]).fetchall():
                of.setdefault(value, set()).add(name)
    if any(len(of.get(h, ())) != 1 for h in wanted):
        return None
    return [next(iter(of[h])) for h in wanted]


def _read(
    conn: sa.Connection, scan: Scan, span: Span, nodes: Sequence[str] | None, hashed: bool
) -> Part | None:
    """One read, one row back: each row's node as its name's hash (`hashed`), or its name
    (names, letters, digits and `._-` as topics allow, joined by newlines)."""
    aggregated = "".join(f", string_agg({field}, ''::bytea)" for field in scan.fields)
    name = conn.dialect.identifier_preparer.quote(scan.table.name)
    node = (
        f"string_agg(int8send({NAME_HASH.format('node')}), ''::bytea)"
        if hashed
        else "string_agg(node, E'\\n')"
    )
    sql = (
        f"SELECT {node}, string_agg(float8send(bucket), ''::bytea)"  # noqa: S608 - names quoted from the schema
        f"{aggregated} FROM {name} WHERE bucket >= %s AND bucket < %s AND ({scan.where})"
    )
    params: list[object] = list(span)
    if nodes is not None:
        sql += " AND node = ANY(%s)"
        params.append(list(nodes))
    with conn.connection.driver_connection.cursor(binary=True) as cursor:  # type: ignore[union-attr]
        cursor.execute(sql, params)
        who, starts, *values = cursor.fetchone()
    if who is None:
        return None
    return (
        np.frombuffer(who, ">i8").astype(np.int64) if hashed else who.split("\n"),
        np.frombuffer(starts, ">f8").astype(np.float64),
        [bytes(v) for v in values],
    )
