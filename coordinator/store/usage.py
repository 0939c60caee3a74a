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
    conn: sa.Connection,
    start: float,
    end: float,
    *,
    jobs: bool = True,
    power: bool = True,
    also: Iterable[str] = (),
) -> list[NodeUse]:
    """Every node's usage. Chargeback asks less: `jobs=False` leaves the jobs out (it reads
    them as columns, `load_job_columns`), `power=False` the power_w samples (only the idle
    power for the energy saved needs them); `also`: nodes to list though nothing else
    names them."""
    buckets = _buckets(conn, start, end, power)
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


def _buckets(conn: sa.Connection, start: float, end: float, power: bool) -> dict[str, Buckets]:
    """Hours wholly in [start, end), then minutes where a node has no hour row: before the
    first whole hour, and after the newest hour row (an hour is rolled up once it ended)."""
    first_hour = -(-start // HOUR) * HOUR
    hours = _read(conn, rollup_hour, HOUR, (first_hour, end - HOUR + 1e-6), power)
    covered = {node: (b.start[0], b.end[-1]) for node, b in hours.items() if len(b)}
    newest = min((hi for _, hi in covered.values()), default=start)
    minutes = _read(conn, rollup_minute, MINUTE, (start, first_hour), power)
    for node, later in _read(conn, rollup_minute, MINUTE, (newest, end), power).items():
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
    conn: sa.Connection, table: sa.Table, width: float, span: tuple[float, float], power: bool
) -> dict[str, Buckets]:
    """Each node's buckets of `table` in [since, until): energy, time awake, and (`power`)
    its power_w samples (count, mean), as arrays. PostgreSQL sends the whole read as one
    row (`store.wide`): a week of a thousand nodes' hours is one row to fetch, not 168,000,
    and no sort on the server."""
    if span[0] >= span[1]:
        return {}
    read = _pg_flat if conn.dialect.name == "postgresql" else _sqlite_flat
    found = read(conn, table, width, span, power)
    return {} if found is None else _per_node(found, width)


# per bucket its node's number; the names by number; per bucket its start; usage, power
# (None: not read)
Flat = tuple[np.ndarray, list[str], np.ndarray, bytes, bytes | None]


def _pg_flat(
    conn: sa.Connection, table: sa.Table, width: float, span: tuple[float, float], power: bool
) -> Flat | None:
    nodes = conn.execute(sa.select(sa.func.count()).select_from(Node)).scalar_one()
    watts = f"coalesce(substring(power_w FROM 1 FOR 16), '\\x{NO_POWER.hex()}'::bytea)"
    scan = wide.Scan(table, ("usage", watts) if power else ("usage",))
    found = wide.read(conn, scan, span, max(nodes, 1), width)
    if found is None:
        return None
    code, names, starts, (usage, *watts_read) = found
    return code, names, starts, usage, watts_read[0] if power else None


def _sqlite_flat(
    conn: sa.Connection, table: sa.Table, _width: float, span: tuple[float, float], power: bool
) -> Flat | None:
    watts = sa.func.coalesce(sa.func.substr(table.c.power_w, 1, 16), NO_POWER)
    where = [table.c.bucket >= span[0], table.c.bucket < span[1]]
    rows = list(
        conn.execute(sa.select(table.c.node, table.c.bucket, table.c.usage, watts).where(*where))
    )
    if not rows:
        return None
    names, starts, usage, watts_read = zip(*rows, strict=True)
    codes: dict[str, int] = {}
    code = wide.numbered(list(names), codes)
    found = b"".join(watts_read) if power else None
    return code, list(codes), np.array(starts, np.float64), b"".join(usage), found


def _per_node(flat: Flat, width: float) -> dict[str, Buckets]:
    """The buckets split by node, each node's oldest first: sorted once, then sliced."""
    code, names, starts, usage, watts = flat
    order = np.lexsort((starts, code))
    use = np.frombuffer(usage, np.float64).reshape(-1, 3)[order]
    start = starts[order]
    if watts is None:  # not read: no samples (zeros from calloc cost no memory until used)
        count, power_sum = np.zeros(len(order)), np.zeros(len(order))
    else:
        power = np.frombuffer(watts, np.float32).reshape(-1, 4)[order].astype(np.float64)
        count = np.nan_to_num(power[:, COUNT])
        power_sum = np.where(count > 0, np.nan_to_num(power[:, VALUE]) * count, 0.0)
    every = Buckets(
        start=start,
        end=start + width,
        energy_j=use[:, ENERGY],
        awake_s=use[:, AWAKE],
        metered=use[:, METERED] > 0,
        power_sum_w=power_sum,
        power_n=count,
    )
    bounds = np.searchsorted(code[order], np.arange(len(names) + 1))
    return {name: every.where(slice(bounds[i], bounds[i + 1])) for i, name in enumerate(names)}


NO_POWER = bytes(16)  # a bucket without power_w samples: count 0


USED = ("id", "name", "node", "cpus", "gpus", "mem_bytes", "started_at", "finished_at",
        "energy_j", "submitted_at", "account", "user_name", "gpu_util_pct")  # fmt: skip


def _jobs(conn: sa.Connection, start: float, end: float) -> dict[str, list[JobUse]]:
    """The columns the report reads (not the argv and labels, JSON to decode per row)."""
    query = sa.select(*(jobs.c[c] for c in USED)).where(
        jobs.c.node.is_not(None),
        jobs.c.started_at.is_not(None),
        jobs.c.started_at <= end,
        sa.or_(jobs.c.finished_at.is_(None), jobs.c.finished_at >= start),
    )
    found: dict[str, list[JobUse]] = defaultdict(list)
    for row in conn.execute(query).all():  # fetched at once: a row at a time costs 3x
        fields = dict(zip(USED, row, strict=True))
        fields["user"] = fields.pop("user_name")
        found[fields["node"]].append(JobUse(**fields))
    return found


NUMBERS = ("started_at", "finished_at", "energy_j", "gpus", "cpus", "gpu_util_pct")
KEYS = {"account": "account", "user": "user_name", "job": "id", "node": "node"}
SEPARATOR = "\x1f"  # joins names on PostgreSQL: no account, user or node name holds it


@dataclass(frozen=True, slots=True)
class JobColumns:
    """The jobs that ran in a window, one array per column (`power.chargeback.Jobs` once
    their nodes are numbered): 100,000 rows read without a Python object each."""

    keys: list[str]  # what the rows group by: each job's account, user, id or node
    nodes: list[str]
    values: np.ndarray  # NUMBERS, one row each (NaN: none)


def load_job_columns(conn: sa.Connection, start: float, end: float, by: str) -> JobColumns:
    """The jobs that ran in [start, end]: on PostgreSQL as one row of concatenated binary
    columns (as `store.wide` reads rollups; a fifth of the time of 100,000 rows)."""
    where = (
        jobs.c.node.is_not(None),
        jobs.c.started_at.is_not(None),
        jobs.c.started_at < end,
        sa.or_(jobs.c.finished_at.is_(None), jobs.c.finished_at > start),
    )
    key = jobs.c[KEYS[by]]
    if conn.dialect.name == "postgresql":
        return _pg_job_columns(conn, key, where)
    rows = conn.execute(
        sa.select(key, jobs.c.node, *(jobs.c[n] for n in NUMBERS)).where(*where)
    ).all()
    if not rows:
        return JobColumns([], [], np.zeros((0, len(NUMBERS))))
    keys, nodes, *numbers = zip(*rows, strict=True)
    return JobColumns(list(keys), list(nodes), np.array(numbers, dtype=np.float64).T)


def _pg_job_columns(
    conn: sa.Connection, key: sa.ColumnElement[str], where: tuple[sa.ColumnElement[bool], ...]
) -> JobColumns:
    joined = [sa.func.string_agg(c, SEPARATOR) for c in (key, jobs.c.node)]
    numbers = [
        sa.func.string_agg(
            sa.func.float8send(sa.func.coalesce(sa.cast(jobs.c[n], sa.Double), float("nan"))),
            sa.literal_column("''::bytea"),
        )
        for n in NUMBERS
    ]
    keys, nodes, *columns = conn.execute(sa.select(*joined, *numbers).where(*where)).one()
    if keys is None:
        return JobColumns([], [], np.zeros((0, len(NUMBERS))))
    values = np.stack([np.frombuffer(c, ">f8").astype(np.float64) for c in columns], axis=1)
    return JobColumns(keys.split(SEPARATOR), nodes.split(SEPARATOR), values)
