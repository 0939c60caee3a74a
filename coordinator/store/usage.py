"""What `dormouse report` reads: per node its samples as readings, its power events, its
jobs, and its capacity from the last hello."""

from __future__ import annotations

from collections import defaultdict

import sqlalchemy as sa

from coordinator.power.energy import Reading
from coordinator.power.report import JobUse, NodeUse
from coordinator.store import nodes as node_rows
from coordinator.store.models import gpu_samples, jobs, power_events, samples


def load_usage(conn: sa.Connection, start: float, end: float) -> list[NodeUse]:
    readings = _readings(conn, start, end)
    events: dict[str, list[tuple[float, str]]] = defaultdict(list)
    query = sa.select(power_events.c.node, power_events.c.ts, power_events.c.kind).where(
        power_events.c.ts <= end
    )
    for node, ts, kind in conn.execute(query.order_by(power_events.c.ts, power_events.c.id)):
        events[node].append((ts, kind))
    used = _jobs(conn, start, end)
    views = {v.name: v for v in node_rows.load_nodes(conn)}
    names = sorted(set(views) | set(readings) | set(events) | set(used))
    found = []
    for name in names:
        hello = views[name].hello if name in views else None
        found.append(
            NodeUse(
                name=name,
                cpus=hello.cpus if hello else 0,
                gpus=len(hello.gpus) if hello else 0,
                mem_bytes=hello.mem_total_bytes if hello else 0,
                readings=readings.get(name, []),
                power_events=events.get(name, []),
                jobs=used.get(name, []),
            )
        )
    return found


def _readings(conn: sa.Connection, start: float, end: float) -> dict[str, list[Reading]]:
    """Counters summed per sample: RAPL package + DRAM + every GPU's energy; None unless the
    package counter is there and every GPU of the sample has one."""
    gpu = (
        sa.select(
            gpu_samples.c.node,
            gpu_samples.c.seq,
            sa.func.count().label("gpus"),
            sa.func.count(gpu_samples.c.gpu_energy_j).label("with_energy"),
            sa.func.sum(gpu_samples.c.gpu_energy_j).label("gpu_j"),
        )
        .where(gpu_samples.c.ts.between(start, end))
        .group_by(gpu_samples.c.node, gpu_samples.c.seq)
        .subquery()
    )
    query = (
        sa.select(
            samples.c.node,
            samples.c.ts,
            samples.c.power_w,
            samples.c.rapl_package_energy_j,
            samples.c.rapl_dram_energy_j,
            gpu.c.gpus,
            gpu.c.with_energy,
            gpu.c.gpu_j,
        )
        .outerjoin(gpu, sa.and_(gpu.c.node == samples.c.node, gpu.c.seq == samples.c.seq))
        .where(samples.c.ts.between(start, end))
        .order_by(samples.c.node, samples.c.ts)
    )
    found: dict[str, list[Reading]] = defaultdict(list)
    for node, ts, power, package, dram, gpus, with_energy, gpu_j in conn.execute(query):
        counter = None
        if package is not None and (gpus or 0) == (with_energy or 0):
            counter = package + (dram or 0.0) + (gpu_j or 0.0)
        found[node].append(Reading(ts, power, counter))
    return found


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
