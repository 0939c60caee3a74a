"""What `dormouse report` reads: per node its energy by bucket from the rollups (hours,
and minutes at the window's newer edge where the hour is not rolled up), its power events,
its jobs, and its capacity from the last hello. It never reads a raw sample: its cost grows
with nodes x buckets, and the newest minutes not rolled up yet are not in it."""

from __future__ import annotations

from collections import defaultdict

import sqlalchemy as sa

from coordinator.core.aggregates import AWAKE, COUNT, ENERGY, METERED, VALUE, Bucket
from coordinator.power.energy import UsageBucket
from coordinator.power.report import JobUse, NodeUse
from coordinator.store import nodes as node_rows
from coordinator.store.models import jobs, power_events, rollup_hour, rollup_minute
from coordinator.store.rollups import HOUR, MINUTE, read_buckets


def load_usage(conn: sa.Connection, start: float, end: float) -> list[NodeUse]:
    buckets = _buckets(conn, start, end)
    events: dict[str, list[tuple[float, str]]] = defaultdict(list)
    query = sa.select(power_events.c.node, power_events.c.ts, power_events.c.kind).where(
        power_events.c.ts <= end
    )
    for node, ts, kind in conn.execute(query.order_by(power_events.c.ts, power_events.c.id)):
        events[node].append((ts, kind))
    used = _jobs(conn, start, end)
    views = {v.name: v for v in node_rows.load_nodes(conn)}
    names = sorted(set(views) | set(buckets) | set(events) | set(used))
    found = []
    for name in names:
        hello = views[name].hello if name in views else None
        found.append(
            NodeUse(
                name=name,
                cpus=hello.cpus if hello else 0,
                gpus=len(hello.gpus) if hello else 0,
                mem_bytes=hello.mem_total_bytes if hello else 0,
                buckets=buckets.get(name, []),
                power_events=events.get(name, []),
                jobs=used.get(name, []),
            )
        )
    return found


def _buckets(conn: sa.Connection, start: float, end: float) -> dict[str, list[UsageBucket]]:
    """Hours wholly in [start, end), then minutes for the rest (each node's hours stop where
    its newest hour row does)."""
    found: dict[str, list[UsageBucket]] = defaultdict(list)
    first_hour = -(-start // HOUR) * HOUR
    hours = read_buckets(conn, rollup_hour, None, first_hour, end - HOUR + 1e-6, ["power_w"])
    covered: dict[str, tuple[float, float]] = {}
    for node, rows in hours.items():
        found[node].extend(_usage(b, HOUR, part) for b, part in rows)
        covered[node] = (rows[0][0], rows[-1][0] + HOUR)
    minutes = read_buckets(conn, rollup_minute, None, start, end, ["power_w"])
    for node, rows in minutes.items():
        lo, hi = covered.get(node, (end, end))
        found[node].extend(_usage(b, MINUTE, part) for b, part in rows if not lo <= b < hi)
        found[node].sort(key=lambda u: u.start)
    return found


def _usage(start: float, width: float, part: Bucket) -> UsageBucket:
    usage = part.usage
    power = part.metrics.get("power_w")
    count = 0 if power is None else int(power[0][COUNT])
    mean = 0.0 if power is None or not count else float(power[0][VALUE])
    return UsageBucket(
        start=start,
        end=start + width,
        energy_j=float(usage[ENERGY]),
        awake_s=float(usage[AWAKE]),
        metered=bool(usage[METERED]),
        power_sum_w=mean * count,
        power_n=count,
    )


def _jobs(conn: sa.Connection, start: float, end: float) -> dict[str, list[JobUse]]:
    query = sa.select(jobs).where(
        jobs.c.node.is_not(None),
        jobs.c.started_at.is_not(None),
        jobs.c.started_at <= end,
        sa.or_(jobs.c.finished_at.is_(None), jobs.c.finished_at >= start),
    )
    found: dict[str, list[JobUse]] = defaultdict(list)
    for row in conn.execute(query).mappings():
        found[row["node"]].append(
            JobUse(
                id=row["id"],
                name=row["name"],
                node=row["node"],
                cpus=row["cpus"],
                gpus=row["gpus"],
                mem_bytes=row["mem_bytes"],
                started_at=row["started_at"],
                finished_at=row["finished_at"],
                energy_j=row["energy_j"],
                submitted_at=row["submitted_at"],
            )
        )
    return found
