"""History from the tier that serves it: one node's metric (`dormouse history --node`), or
a metric over many nodes grouped (`--by fleet|node|label:K`)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import sqlalchemy as sa

from coordinator.core import aggregates
from coordinator.core.aggregates import COUNT, VALUE
from coordinator.core.fleet import Entries, merge_by
from coordinator.core.rollups import Aggregate, bucket_start, merge
from coordinator.core.series import FleetQuery, Point, SeriesQuery
from coordinator.store import wide
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
    read = Read(table, width, query, group_of, query.since, query.until)
    parts, newest = _entries(conn, read)
    found = [(Entries(*part), query.step_s == width) for part in parts]
    if tier == "hour" and newest < query.until:
        tail, _ = _entries(conn, Read(rollup_minute, MINUTE, query, group_of, newest, query.until))
        found += [(Entries(*part), False) for part in tail]
    if any(not unique for _, unique in found) and query.step_s != width:
        merged = Entries(*(np.concatenate([getattr(e, f) for e, _ in found]) for f in ENTRY))
        return [(merged, False)]  # steps may overlap across parts: merge them together
    return found


@dataclass(frozen=True)
class Read:
    """One read of a rollup tier: its table and bucket width, the query, the nodes asked
    for (node: its group) and the span of bucket starts, [since, until)."""

    table: sa.Table
    width: float
    query: FleetQuery
    group_of: Mapping[str, int]
    since: float
    until: float

    @property
    def listed(self) -> bool:
        """Whether the nodes are named in the query; past `NODES_LISTED` every node's rows
        are read and theirs kept, cheaper than a list of thousands in the plan."""
        return len(self.group_of) <= NODES_LISTED


ENTRY = ("member", "group", "step", "values")
Part = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _entries(conn: sa.Connection, read: Read) -> tuple[list[Part], float]:
    """([(member, group, step, values)], the end of the newest bucket read). The values
    stay the stored float32, viewed, not copied: a week of a thousand 8-GPU nodes is 1.3 M
    entries, and each copy of them costs tens of milliseconds."""
    rows = _rows(conn, read)
    if rows is None:
        return [], read.since
    query, group_of = read.query, read.group_of
    code, names, bucket, sizes, blobs, gpus = rows
    index = {name: i for i, name in enumerate(group_of)}
    known = (index.get(name, -1) for name in names)  # -1: a node left out, no row of it kept
    node = np.fromiter(known, np.int64, len(names))[code]
    groups = np.fromiter(group_of.values(), np.int64, len(group_of))
    values = np.frombuffer(blobs, np.float32).reshape(-1, 4)
    step = ((bucket - query.origin) // query.step_s).astype(np.int64)
    if query.metric.scope is Scope.NODE:  # one entry per row: the first of each
        firsts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
        part = (node, groups[node], step, values[firsts])
    else:
        gpu = np.frombuffer(gpus, np.uint8).astype(np.int64)
        member = np.repeat(node, sizes) * 256 + gpu
        part = (member, np.repeat(groups[node], sizes), np.repeat(step, sizes), values)
        if query.gpu is not None:
            wanted = gpu == query.gpu
            part = tuple(a[wanted] for a in part)
    return [part], float(bucket.max()) + read.width


# per bucket its node's number; the names by number; per bucket its start and entries; every
# bucket's entries and GPU indices, concatenated
Rows = tuple[np.ndarray, list[str], np.ndarray, np.ndarray, bytes, bytes]


def _rows(conn: sa.Connection, read: Read) -> Rows | None:
    """The buckets of the read's metric and span, as parallel arrays: per bucket its
    node, start and entries; every bucket's entries and (for a GPU metric) GPU indices,
    concatenated."""
    read_rows = _pg_rows if conn.dialect.name == "postgresql" else _sqlite_rows
    found = read_rows(conn, read)
    if found is None:
        return None
    sizes, gpus = found[3], found[5]
    if read.query.metric.scope is Scope.GPU and len(gpus) != int(sizes.sum()):
        raise ValueError(f"{read.table.name}: a bucket's GPU entries and GPU indices differ")
    return found


def _pg_rows(conn: sa.Connection, read: Read) -> Rows | None:
    """The rows as one (`store.wide`): per bucket its size (bytes), its entries and, for a
    GPU metric, its GPU indices; every node's rows past `NODES_LISTED`, theirs kept."""
    column = conn.dialect.identifier_preparer.quote(read.query.metric.name)
    indices = ("gpus",) if read.query.metric.scope is Scope.GPU else ()
    fields = (f"int4send(octet_length({column}))", column, *indices)
    scan = wide.Scan(read.table, fields, f"{column} IS NOT NULL")
    nodes = list(read.group_of) if read.listed else len(read.group_of)
    found = wide.read(conn, scan, (read.since, read.until), nodes, read.width)
    if found is None:
        return None
    code, names, starts, (sizes, blobs, *gpus) = found
    entries = np.frombuffer(sizes, ">i4").astype(np.int64) // 16
    rows = (code, names, starts, entries, blobs, gpus[0] if gpus else b"")
    if read.listed:
        return rows
    return _keep(rows, np.array([n in read.group_of for n in names], bool)[code])


def _keep(rows: Rows, keep: np.ndarray) -> Rows | None:
    """The buckets of `rows` where `keep` holds, their entries and GPU indices with them;
    the names of nodes left out stay listed, unused."""
    code, names, starts, sizes, blobs, gpus = rows
    if not keep.any():
        return None
    entry = np.repeat(keep, sizes)
    values = np.frombuffer(blobs, np.uint8).reshape(-1, 16)[entry].tobytes()
    indices = np.frombuffer(gpus, np.uint8)[entry].tobytes() if gpus else b""
    return code[keep], names, starts[keep], sizes[keep], values, indices


def _sqlite_rows(conn: sa.Connection, read: Read) -> Rows | None:
    """A row per bucket (SQLite runs in-process: no wire to spare)."""
    table = read.table
    column = table.c[read.query.metric.name]
    where = [table.c.bucket >= read.since, table.c.bucket < read.until, column.is_not(None)]
    if read.listed:
        where.append(table.c.node.in_(list(read.group_of)))
    select = sa.select(table.c.node, table.c.bucket, column, table.c.gpus).where(*where)
    # the driver's rows as they are (str, float, bytes need no conversion): a week of a
    # thousand nodes is 168,000 rows, and SQLAlchemy's per-row wrapping was most of the read
    found = conn.execute(select).cursor.fetchall()
    rows = [r for r in found if r[0] in read.group_of]
    if not rows:
        return None
    gpu = read.query.metric.scope is Scope.GPU
    codes: dict[str, int] = {}
    code = wide.numbered([r[0] for r in rows], codes)
    return (
        code,
        list(codes),
        np.array([r[1] for r in rows], np.float64),
        np.array([len(r[2]) // 16 for r in rows], np.int64),
        b"".join(r[2] for r in rows),
        b"".join(r[3] for r in rows) if gpu else b"",
    )
