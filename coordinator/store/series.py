"""History from the tier that serves it: one node's metric (`dormouse history --node`), or
a metric over many nodes grouped (`--by fleet|node|label:K`)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping

import numpy as np
import sqlalchemy as sa

from coordinator.core import aggregates
from coordinator.core.aggregates import COUNT, VALUE
from coordinator.core.fleet import Entries
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
    parts: dict[float, list[Aggregate]] = defaultdict(list)
    newest = query.since
    select = sa.select(table.c.bucket, table.c.gpus, table.c[query.metric.name]).where(
        table.c.node == query.node, table.c.bucket >= query.since, table.c.bucket < query.until
    )
    for start, gpus, blob in conn.execute(select.order_by(table.c.bucket)):
        newest = max(newest, start + width)
        if blob is None:
            continue
        values = aggregates.unpack(blob)
        at = _entry(query.metric, tuple(gpus), values, query.gpu_index)
        if at is not None:
            parts[bucket_start(start, query.step_s)].append(_aggregate(query.metric, values[at]))
    points = [Point(ts, merge(aggs)) for ts, aggs in sorted(parts.items())]
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
) -> Entries:
    """The entries of `query.metric` of the nodes in `group_of` (node: its group) from the
    `tier` ("minute" or "hour"), and from the minute tier after the newest bucket found
    there (an hour is rolled up only once it has ended)."""
    table, width = TABLES[tier]
    parts, newest = _entries(conn, table, width, query, group_of, query.since)
    if tier == "hour" and newest < query.until:
        tail, _ = _entries(conn, rollup_minute, MINUTE, query, group_of, newest)
        parts = [*parts, *tail]
    if not parts:
        none = np.zeros(0, np.int64)
        return Entries(none, none, none, np.zeros((0, 4)))
    member, group, step, values = (np.concatenate(arrays) for arrays in zip(*parts, strict=True))
    return Entries(member, group, step, values)


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
    column = table.c[query.metric.name]
    select = sa.select(table.c.node, table.c.bucket, table.c.gpus, column).where(
        table.c.bucket >= since, table.c.bucket < query.until, column.is_not(None)
    )
    if len(group_of) <= NODES_LISTED:
        select = select.where(table.c.node.in_(list(group_of)))
    found = [row for row in conn.execute(select) if row[0] in group_of]
    if not found:
        return [], since
    index = {name: i for i, name in enumerate(group_of)}
    node = np.fromiter((index[row[0]] for row in found), np.int64, len(found))
    group = np.fromiter((group_of[row[0]] for row in found), np.int64, len(found))
    bucket = np.fromiter((row[1] for row in found), np.float64, len(found))
    sizes = np.fromiter((len(row[3]) // 16 for row in found), np.int64, len(found))
    values = np.frombuffer(b"".join(row[3] for row in found), np.float32).reshape(-1, 4)
    row = np.repeat(np.arange(len(found)), sizes)
    member = node[row]
    if query.metric.scope is Scope.GPU:
        gpus = b"".join(r[2][:n].ljust(n, b"\xff") for r, n in zip(found, sizes, strict=True))
        gpu = np.frombuffer(gpus, np.uint8).astype(np.int64)
        member = member * 256 + gpu
        wanted = np.ones(len(row), bool) if query.gpu is None else gpu == query.gpu
    else:
        wanted = np.zeros(len(row), bool)
        wanted[np.concatenate(([0], np.cumsum(sizes)[:-1]))] = True  # one entry per row
    step = ((bucket - query.origin) // query.step_s).astype(np.int64)[row]
    part = (member[wanted], group[row][wanted], step[wanted], values[wanted].astype(np.float64))
    return [part], float(bucket.max()) + width
