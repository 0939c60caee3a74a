"""What `dormouse report` reads: per node its energy by bucket from the rollups (hours,
and minutes at the window's newer edge where the hour is not rolled up), its power events,
its jobs, and its capacity from the last hello. It never reads a raw sample: its cost grows
with nodes x buckets, and the newest minutes not rolled up yet are not in it."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import sqlalchemy as sa

from coordinator.core.aggregates import AWAKE, COUNT, ENERGY, METERED, VALUE
from coordinator.power.energy import FIELDS, Buckets
from coordinator.power.report import JobUse, NodeUse
from coordinator.store import nodes as node_rows
from coordinator.store import wide
from coordinator.store.models import Node, jobs, power_events, rollup_hour, rollup_minute
from coordinator.store.rollups import HOUR, MINUTE


def load_usage(
    conn: sa.Connection, start: float, end: float, *, jobs: bool = True, also: Iterable[str] = ()
) -> list[NodeUse]:
    """Every node's usage; `jobs=False` leaves their jobs out (chargeback reads them as
    columns, `load_job_columns`), `also`: nodes to list though nothing else names them."""
    buckets = _buckets(conn, start, end)
    events: dict[str, list[tuple[float, str]]] = defaultdict(list)
    query = sa.select(power_events.c.node, power_events.c.ts, power_events.c.kind).where(
        power_events.c.ts <= end
    )
    for node, ts, kind in conn.execute(query.order_by(power_events.c.ts, power_events.c.id)):
        events[node].append((ts, kind))
    used = _jobs(conn, start, end) if jobs else {}
    views = {v.name: v for v in node_rows.load_nodes(conn)}
    first_seen = node_rows.first_seen(conn)
    names = sorted(set(views) | set(buckets) | set(events) | set(used) | set(also))
    found = []
    for name in names:
        hello = views[name].hello if name in views else None
        found.append(
            NodeUse(
                name=name,
                cpus=hello.cpus if hello else 0,
                gpus=len(hello.gpus) if hello else 0,
                mem_bytes=hello.mem_total_bytes if hello else 0,
                buckets=buckets.get(name) or Buckets.of([]),
                power_events=events.get(name, []),
                jobs=used.get(name, []),
                labels=hello.labels if hello else {},
                first_seen=first_seen.get(name),
            )
        )
    return found


def _buckets(conn: sa.Connection, start: float, end: float) -> dict[str, Buckets]:
    """Hours wholly in [start, end), then minutes where a node has no hour row: before the
    first whole hour, and after the newest hour row (an hour is rolled up once it ended)."""
    first_hour = -(-start // HOUR) * HOUR
    hours = _read(conn, rollup_hour, HOUR, first_hour, end - HOUR + 1e-6)
    covered = {node: (b.start[0], b.end[-1]) for node, b in hours.items() if len(b)}
    newest = min((hi for _, hi in covered.values()), default=start)
    minutes = _read(conn, rollup_minute, MINUTE, start, first_hour)
    for node, later in _read(conn, rollup_minute, MINUTE, newest, end).items():
        minutes[node] = _join(minutes.get(node), later)
    found = dict(hours)
    for node, part in minutes.items():
        lo, hi = covered.get(node, (end, end))
        found[node] = _join(found.get(node), part.where((part.start < lo) | (part.start >= hi)))
    return found


def _join(a: Buckets | None, b: Buckets) -> Buckets:
    if a is None:
        return b
    both = Buckets(*(np.concatenate([getattr(a, f), getattr(b, f)]) for f in FIELDS))
    return both.where(np.argsort(both.start, kind="stable"))


def _read(
    conn: sa.Connection, table: sa.Table, width: float, since: float, until: float
) -> dict[str, Buckets]:
    """Each node's buckets of `table` in [since, until): energy, time awake, and its
    power_w samples (count, mean), as arrays. PostgreSQL sends the whole read as one row
    (`store.wide`): a week of a thousand nodes' hours is one row to fetch, not 168,000,
    and no sort on the server."""
    if since >= until:
        return {}
    read = _pg_flat if conn.dialect.name == "postgresql" else _sqlite_flat
    found = read(conn, table, width, since, until)
    return {} if found is None else _per_node(*found, width)


Flat = tuple[list[str], np.ndarray, bytes, bytes]  # per bucket: node, start; usage, power


def _pg_flat(
    conn: sa.Connection, table: sa.Table, width: float, since: float, until: float
) -> Flat | None:
    nodes = conn.execute(sa.select(sa.func.count()).select_from(Node)).scalar_one()
    watts = f"coalesce(substring(power_w FROM 1 FOR 16), '\\x{NO_POWER.hex()}'::bytea)"
    scan = wide.Scan(table, ("usage", watts))
    found = wide.read(conn, scan, (since, until), max(nodes, 1), width)
    if found is None:
        return None
    names, starts, (usage, power) = found
    return names, starts, usage, power


def _sqlite_flat(
    conn: sa.Connection, table: sa.Table, _width: float, since: float, until: float
) -> Flat | None:
    watts = sa.func.coalesce(sa.func.substr(table.c.power_w, 1, 16), NO_POWER)
    where = [table.c.bucket >= since, table.c.bucket < until]
    rows = list(
        conn.execute(sa.select(table.c.node, table.c.bucket, table.c.usage, watts).where(*where))
    )
    if not rows:
        return None
    names, starts, usage, power = zip(*rows, strict=True)
    return list(names), np.array(starts, np.float64), b"".join(usage), b"".join(power)


def _per_node(
    names: list[str], starts: np.ndarray, usage: bytes, watts: bytes, width: float
) -> dict[str, Buckets]:
    """The buckets split by node, each node's oldest first: sorted once, then sliced."""
    codes: dict[str, int] = {}
    code = np.fromiter((codes.setdefault(n, len(codes)) for n in names), np.int64, len(names))
    order = np.lexsort((starts, code))
    use = np.frombuffer(usage, np.float64).reshape(-1, 3)[order]
    power = np.frombuffer(watts, np.float32).reshape(-1, 4)[order].astype(np.float64)
    count = np.nan_to_num(power[:, COUNT])
    start = starts[order]
    every = Buckets(
        start=start,
        end=start + width,
        energy_j=use[:, ENERGY],
        awake_s=use[:, AWAKE],
        metered=use[:, METERED] > 0,
        power_sum_w=np.where(count > 0, np.nan_to_num(power[:, VALUE]) * count, 0.0),
        power_n=count,
    )
    bounds = np.searchsorted(code[order], np.arange(len(codes) + 1))
    return {name: every.where(slice(bounds[i], bounds[i + 1])) for name, i in codes.items()}


NO_POWER = bytes(16)  # a bucket without power_w samples: count 0


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
                account=row["account"],
                user=row["user_name"],
                gpu_util_pct=row["gpu_util_pct"],
            )
        )
    return found


JOB_COLUMNS = (
    jobs.c.id, jobs.c.account, jobs.c.user_name, jobs.c.node, jobs.c.started_at,
    jobs.c.finished_at, jobs.c.energy_j, jobs.c.gpus, jobs.c.cpus, jobs.c.gpu_util_pct,
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class JobColumns:
    """The jobs that ran in a window, one list per column (`power.chargeback.Jobs` once
    their nodes are numbered): 100,000 rows read without a Python object each."""

    ids: list[str]
    accounts: list[str]
    users: list[str]
    nodes: list[str]
    values: np.ndarray  # started_at, finished_at, energy_j, gpus, cpus, gpu_util_pct (NaN: none)


def load_job_columns(conn: sa.Connection, start: float, end: float) -> JobColumns:
    query = sa.select(*JOB_COLUMNS).where(
        jobs.c.node.is_not(None),
        jobs.c.started_at.is_not(None),
        jobs.c.started_at < end,
        sa.or_(jobs.c.finished_at.is_(None), jobs.c.finished_at > start),
    )
    rows = conn.execute(query).all()
    if not rows:
        return JobColumns([], [], [], [], np.zeros((0, 6)))
    ids, accounts, users, nodes, *numbers = zip(*rows, strict=True)
    values = np.array(numbers, dtype=np.float64).T  # None reads as NaN
    return JobColumns(list(ids), list(accounts), list(users), list(nodes), values)
