"""History from the tier that serves it: one node's metric (`dormouse history --node`), or
a metric over many nodes grouped (`--by fleet|node|label:K`)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping

import numpy as np
import sqlalchemy as sa

from coordinator.core import aggregates
from coordinator.core.aggregates import COUNT, VALUE
from coordinator.core.fleet import Entries, merge_by
from coordinator.core.rollups import Aggregate, bucket_start, merge
from coordinator.core.series import FleetQuery, Point, SeriesQuery
from coordinator.store.models import rollup_hour, rollup_minute
from coordinator.store.rollups import HOUR, MINUTE
from coordinator.store.samples import read_blocks
from shared.metrics import Kind, Metric, Scope

NODES_LISTED = 1000  # more nodes than this: read every node's rows and keep theirs
TABLES = {"minute": (rollup_minute, MINUTE), "hour": (rollup_hour, HOUR)}


def _aggregate(metric: Metric, entry: np.ndarray) -> Aggregate:
    count = int(entry[COUNT])
    if not count:
        return Aggregate(count=0)
    value, low, high = (None if np.isnan(v) else float(v) for v in entry[VALUE:])
    if metric.kind is Kind.COUNTER:
        return Aggregate(count=count, min=low, max=high, delta=value)
    return Aggregate(count=count, avg=value, min=low, max=high)


def _entry(metric: Metric, gpus: tuple[int, ...], values: np.ndarray, gpu: int) -> int | None:
    if metric.scope is Scope.NODE:
        return 0
    return gpus.index(gpu) if gpu in gpus and gpus.index(gpu) < len(values) else None


def history(conn: sa.Connection, query: SeriesQuery, tier: str) -> list[Point]:
    """Points every `step_s` from the `tier` ("raw", "minute" or "hour"); the newest
    minutes, not rolled up yet, come from the raw chunks."""
    if tier == "raw":
        return _from_raw(conn, query, query.since)
    table, width = TABLES[tier]
    select = sa.select(table.c.bucket, table.c.gpus, table.c[query.metric.name]).where(
        table.c.node == query.node, table.c.bucket >= query.since, table.c.bucket < query.until
    )
    found = conn.execute(select).all()
    newest = max([query.since, *(start + width for start, _, _ in found)])
    starts, rows = [], []
    for start, gpus, blob in found:
        at = 0 if query.metric.scope is Scope.NODE else bytes(gpus).find(query.gpu_index)
        if blob is not None and 0 <= at < len(blob) // 16:
            starts.append(start)
            rows.append(np.frombuffer(blob, np.float32, 4, 16 * at))
    points = []
    if rows:
        steps = np.floor(np.array(starts) / query.step_s) * query.step_s
        counter = query.metric.kind is Kind.COUNTER
        unique, _, merged = merge_by(steps, np.array(rows, dtype=np.float64), counter)
        points = [
            Point(float(ts), _aggregate(query.metric, m))
            for ts, m in zip(unique, merged, strict=True)
        ]
    return _combine(points, _from_raw(conn, query, newest))


def _combine(points: list[Point], tail: list[Point]) -> list[Point]:
    merged: dict[float, list[Aggregate]] = defaultdict(list)
    for point in [*points, *tail]:
        merged[point.ts].append(point.agg)
    return [Point(ts, merge(aggs)) for ts, aggs in sorted(merged.items())]


def _from_raw(conn: sa.Connection, query: SeriesQuery, since: float) -> list[Point]:
    """Steps from the raw chunks; a counter counts from the sample before `since`."""
    if since >= query.until:
        return []
    blocks = read_blocks(conn, [query.node], since - MINUTE, query.until)
    rows = aggregates.gather(blocks.get(query.node, []))
    inside = rows.ts[(rows.ts >= since) & (rows.ts < query.until)]
    points = []
    for lo in sorted({bucket_start(t, query.step_s) for t in inside}):
        part = aggregates.bucket(
            rows, max(lo, since), min(lo + query.step_s, query.until), float("inf")
        )
        values = None if part is None else part.metrics.get(query.metric.name)
        if part is None or values is None:
            continue
        at = _entry(query.metric, part.gpus, values, query.gpu_index)
        if at is not None and values[at][COUNT]:
            points.append(Point(lo, _aggregate(query.metric, values[at])))
    return points


def fleet(
    conn: sa.Connection, query: FleetQuery, tier: str, group_of: Mapping[str, int]
) -> list[tuple[Entries, bool]]:
    """The entries of `query.metric` of the nodes in `group_of` (node: its group) from the
    `tier` ("minute" or "hour"), and from the minute tier after the newest bucket found
    there (an hour is rolled up only once it has ended); each part with whether it holds
    at most one entry per member and step (`core.fleet.member_values`' `unique`). Their
    steps never overlap when the step is the tier's width."""
    table, width = TABLES[tier]
    parts, newest = _entries(conn, table, width, query, group_of, query.since)
    found = [(Entries(*part), query.step_s == width) for part in parts]
    if tier == "hour" and newest < query.until:
        tail, _ = _entries(conn, rollup_minute, MINUTE, query, group_of, newest)
        found += [(Entries(*part), False) for part in tail]
    if any(not unique for _, unique in found) and query.step_s != width:
        merged = Entries(*(np.concatenate([getattr(e, f) for e, _ in found]) for f in ENTRY))
        return [(merged, False)]  # steps may overlap across parts: merge them together
    return found


ENTRY = ("member", "group", "step", "values")
Part = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _entries(  # noqa: PLR0917 - the query's parts
    conn: sa.Connection,
    table: sa.Table,
    width: float,
    query: FleetQuery,
    group_of: Mapping[str, int],
    since: float,
) -> tuple[list[Part], float]:
    """([(member, group, step, values)], the end of the newest bucket read)."""
    rows = _rows(conn, table, query, list(group_of), since)
    if rows is None:
        return [], since
    names, bucket, sizes, blobs, gpus = rows
    index = {name: i for i, name in enumerate(group_of)}
    node = np.array([index[n] for n in names], np.int64)
    group = np.array([group_of[n] for n in group_of], np.int64)[node]
    values = np.frombuffer(blobs, np.float32).reshape(-1, 4)
    row = np.repeat(np.arange(len(bucket)), sizes)
    member = node[row]
    if query.metric.scope is Scope.GPU:
        gpu = np.frombuffer(gpus, np.uint8).astype(np.int64)
        member = member * 256 + gpu
        wanted = np.ones(len(row), bool) if query.gpu is None else gpu == query.gpu
    else:
        wanted = np.zeros(len(row), bool)
        wanted[np.concatenate(([0], np.cumsum(sizes)[:-1]))] = True  # one entry per row
    step = ((bucket - query.origin) // query.step_s).astype(np.int64)[row]
    part = (member[wanted], group[row][wanted], step[wanted], values[wanted].astype(np.float64))
    return [part], float(bucket.max()) + width


Rows = tuple[list[str], np.ndarray, np.ndarray, bytes, bytes]


def _rows(
    conn: sa.Connection, table: sa.Table, query: FleetQuery, nodes: list[str], since: float
) -> Rows | None:
    """The buckets of `query.metric` in [since, until) of `nodes`, as parallel arrays: per
    bucket its node, start and entries; every bucket's entries and (for a GPU metric) GPU
    indices, concatenated. PostgreSQL answers one row per node, its buckets aggregated and
    its blobs concatenated by the server, so a week of a thousand nodes crosses the wire as
    a thousand rows; SQLite, in-process, a row per bucket."""
    column = table.c[query.metric.name]
    where = [table.c.bucket >= since, table.c.bucket < query.until, column.is_not(None)]
    if len(nodes) <= NODES_LISTED:
        where.append(table.c.node.in_(nodes))
    wanted = set(nodes)
    gpu = query.metric.scope is Scope.GPU
    if conn.dialect.name == "postgresql":
        nothing = sa.literal(b"", sa.LargeBinary)
        select = sa.select(  # numbers as binary (float8send): no text to parse
            table.c.node,
            sa.func.string_agg(sa.func.float8send(table.c.bucket), nothing),
            sa.func.string_agg(sa.func.int4send(sa.func.octet_length(column)), nothing),
            sa.func.string_agg(column, nothing),
            sa.func.string_agg(table.c.gpus if gpu else nothing, nothing),
        ).where(*where).group_by(table.c.node)  # fmt: skip
        found = [r for r in conn.execute(select) if r[0] in wanted]
        counts = [len(r[1]) // 8 for r in found]
        names = [r[0] for r, n in zip(found, counts, strict=True) for _ in range(n)]
        starts = np.frombuffer(b"".join(r[1] for r in found), ">f8")
        sizes = np.frombuffer(b"".join(r[2] for r in found), ">i4") // 16
        blobs, gpus = b"".join(r[3] for r in found), b"".join(r[4] for r in found)
    else:
        select = sa.select(table.c.node, table.c.bucket, column, table.c.gpus).where(*where)
        rows = [r for r in conn.execute(select) if r[0] in wanted]
        names = [r[0] for r in rows]
        starts = np.array([r[1] for r in rows], np.float64)
        sizes = np.array([len(r[2]) // 16 for r in rows], np.int64)
        blobs, gpus = b"".join(r[2] for r in rows), b"".join(r[3] for r in rows) if gpu else b""
    if not names:
        return None
    if gpu and len(gpus) != int(sizes.sum()):
        raise ValueError(f"{table.name}: a bucket's GPU entries and GPU indices differ")
    return names, starts.astype(np.float64), sizes.astype(np.int64), blobs, gpus
