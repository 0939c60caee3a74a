"""History from the tier that serves it: one node's metric (`dormouse history --node`), or
a metric over many nodes grouped (`--by fleet|node|label:K`)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping

import numpy as np
import sqlalchemy as sa

from coordinator.core import aggregates
from coordinator.core.aggregates import COUNT, MAX, MIN, VALUE
from coordinator.core.rollups import Aggregate, bucket_start, merge
from coordinator.core.series import FleetQuery, Point, SeriesQuery
from coordinator.store.models import rollup_hour, rollup_minute
from coordinator.store.rollups import HOUR, MINUTE
from coordinator.store.samples import read_blocks
from shared.metrics import Kind, Metric, Scope

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
    conn: sa.Connection, query: FleetQuery, tier: str, group_of: Mapping[str, str]
) -> dict[str, list[tuple[float, float]]]:
    """Per group, (step start, value): each member's (node, or GPU of a GPU metric) value
    over the step, combined across the group's members by `query.agg`. A step where no
    member of a group has a sample has no point (a gap, never a line across it)."""
    table, _ = TABLES[tier]
    name = query.metric.name
    select = sa.select(table.c.node, table.c.bucket, table.c.gpus, table.c[name]).where(
        table.c.bucket >= query.since, table.c.bucket < query.until, table.c[name].is_not(None)
    )
    if len(group_of) < 1000:
        select = select.where(table.c.node.in_(list(group_of)))
    members: dict[tuple[str, float], list[np.ndarray]] = defaultdict(list)
    member_gpus: dict[tuple[str, float], list[tuple[int, ...]]] = defaultdict(list)
    for node, start, gpus, blob in conn.execute(select):
        if node not in group_of:
            continue
        key = (node, bucket_start(start, query.step_s))
        members[key].append(aggregates.unpack(blob))
        member_gpus[key].append(tuple(gpus))
    per_step: dict[tuple[str, float], list[float]] = defaultdict(list)
    counter = query.metric.kind is Kind.COUNTER
    for (node, step), arrays in members.items():
        for value in _member_values(arrays, member_gpus[(node, step)], query, counter):
            per_step[(group_of[node], step)].append(value)
    combine = COMBINE[query.agg]
    series: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for (group, step), values in sorted(per_step.items(), key=lambda kv: kv[0][1]):
        series[group].append((step, combine(np.array(values))))
    return dict(series)


def _member_values(
    arrays: list[np.ndarray], gpus: list[tuple[int, ...]], query: FleetQuery, counter: bool
) -> list[float]:
    """A node's buckets in one step into one value per member (the node, or each GPU)."""
    if query.metric.scope is Scope.GPU:
        indices = sorted({g for found in gpus for g in found})
        if query.gpu is not None:
            indices = [g for g in indices if g == query.gpu]
        aligned = []
        for array, found in zip(arrays, gpus, strict=True):
            out = np.zeros((len(indices), 4))
            out[:, VALUE:] = np.nan
            for i, g in enumerate(indices):
                if g in found and found.index(g) < len(array):
                    out[i] = array[found.index(g)]
            aligned.append(out)
        stacked = np.stack(aligned)
    else:
        stacked = np.stack([a[:1] for a in arrays])
    merged = aggregates.merge_arrays(stacked, counter)
    field = {"min": MIN, "max": MAX}.get(query.agg, VALUE)
    return [float(v) for v, n in zip(merged[:, field], merged[:, COUNT], strict=True) if n > 0]


COMBINE: dict[str, Callable[[np.ndarray], float]] = {
    "avg": lambda v: float(v.mean()),
    "min": lambda v: float(v.min()),
    "max": lambda v: float(v.max()),
    "sum": lambda v: float(v.sum()),
    "p95": lambda v: float(np.percentile(v, 95)),
}
