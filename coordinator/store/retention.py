"""Retention that costs what expires, and the partitions that make it so.

On PostgreSQL the raw chunks and the minute rollups are partitioned by UTC day (as
TimescaleDB's chunks, without the extension): the leader keeps partitions ready a few days
ahead, and a day that has wholly expired is dropped, a catalogue change however many rows
it held. Rows older than the last partition's start (a conversion's old data, a crafted
stamp) land in a default partition. What is left to expire (the day the cutoff falls in,
the default partition, every table on SQLite) is deleted by an index range on the time of
each row's newest sample, so a pass with nothing to expire reads no row.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import sqlalchemy as sa

from coordinator.store.models import CHUNK_SPAN_S, raw_chunks, rollup_hour, rollup_minute

DAY = 86400.0
DAYS_AHEAD = 3
PARTITION_RE = re.compile(r"_p(\d+)$")


@dataclass(frozen=True, slots=True)
class Tier:
    table: sa.Table
    time: str  # the column the table is partitioned by (a row's oldest sample)
    partitioned: bool
    slack_s: float = 0.0  # a row's newest sample is at most this after its `time`
    newest: str | None = None  # the indexed column of a row's newest sample, if not `time`

    def partition(self, day: float) -> str:
        return f"{self.table.name}_p{int(day // DAY)}"


RAW = Tier(raw_chunks, "ts_first", partitioned=True, slack_s=CHUNK_SPAN_S, newest="ts_last")
MINUTES = Tier(rollup_minute, "bucket", partitioned=True)
HOURS = Tier(rollup_hour, "bucket", partitioned=False)
TIERS = (RAW, MINUTES, HOURS)


def partitions(conn: sa.Connection, tier: Tier) -> dict[float, str]:
    """Day start -> partition name, for the tier's daily partitions (PostgreSQL)."""
    names = conn.execute(
        sa.text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = :parent"
        ),
        {"parent": tier.table.name},
    ).scalars()
    found = {}
    for name in names:
        match = PARTITION_RE.search(name)
        if match:
            found[int(match.group(1)) * DAY] = name
    return found


def ensure_partitions(conn: sa.Connection, tier: Tier, first: float, last: float) -> int:
    """Day partitions from the day of `first` to the day of `last` (PostgreSQL); rows the
    default partition holds for a new day move into it. Returns how many were made."""
    if conn.dialect.name != "postgresql" or not tier.partitioned:
        return 0
    have = partitions(conn, tier)
    made = 0
    day = first // DAY * DAY
    while day <= last:
        if day not in have:
            _create(conn, tier, day)
            made += 1
        day += DAY
    return made


def _create(conn: sa.Connection, tier: Tier, day: float) -> None:
    parent, name = tier.table.name, tier.partition(day)
    default = f"{parent}_default"
    column = tier.time
    conn.execute(sa.text(f"CREATE TABLE {name} (LIKE {parent} INCLUDING DEFAULTS)"))
    moved = {"lo": day, "hi": day + DAY}
    in_day = f"{column} >= :lo AND {column} < :hi"
    conn.execute(sa.text(f"INSERT INTO {name} SELECT * FROM {default} WHERE {in_day}"), moved)  # noqa: S608 - names are the tier's own
    conn.execute(sa.text(f"DELETE FROM {default} WHERE {in_day}"), moved)  # noqa: S608
    conn.execute(
        sa.text(
            f"ALTER TABLE {parent} ATTACH PARTITION {name} "
            f"FOR VALUES FROM ({day!r}) TO ({day + DAY!r})"
        )
    )


def expire(conn: sa.Connection, tier: Tier, cutoff: float, batch: int) -> int:
    """Remove the tier's rows whose every sample is older than `cutoff`: whole days by
    dropping their partition, the rest by index (see `expiry`). Returns the rows (or, for
    a dropped day, 1 per partition) removed; 0 when nothing expired."""
    removed = 0
    if conn.dialect.name == "postgresql" and tier.partitioned:
        for day, name in sorted(partitions(conn, tier).items()):
            if day + DAY + tier.slack_s <= cutoff:
                conn.execute(sa.text(f"DROP TABLE {name}"))
                removed += 1
    result = conn.execute(expiry(tier, cutoff, batch, conn.dialect.name))
    return removed + int(result.rowcount or 0)


def expiry(tier: Tier, cutoff: float, batch: int, dialect: str) -> sa.Delete:
    """The tier's rows whose newest sample is older than `cutoff`, found by an index range
    on that time, so only expired rows are read. PostgreSQL deletes them all at once (what
    is left after dropping whole days is at most a day's); SQLite, whose writer locks the
    whole file, up to `batch` rows a statement."""
    table = tier.table
    newest = table.c[tier.newest or tier.time]
    if dialect == "postgresql":
        return sa.delete(table).where(newest < cutoff)
    rowid: sa.ColumnElement[int] = sa.literal_column("rowid")
    doomed = sa.select(rowid).select_from(table).where(newest < cutoff).limit(batch)
    return sa.delete(table).where(rowid.in_(doomed.scalar_subquery()))


def size_bytes(conn: sa.Connection, tier: Tier) -> int:
    """The tier's bytes on disk: tables, partitions, indexes and TOAST."""
    return relation_bytes(conn, tier.table.name)


def relation_bytes(conn: sa.Connection, name: str) -> int:
    """A table's bytes on disk with its partitions, indexes and TOAST: on PostgreSQL the
    table the search path finds (not a namesake in another schema)."""
    if conn.dialect.name == "postgresql":
        return int(
            conn.execute(
                sa.text(
                    "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
                    "WHERE c.relkind IN ('r', 'p') AND (c.oid = to_regclass(:name) OR c.oid "
                    "IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = to_regclass(:name)))"
                ),
                {"name": name},
            ).scalar_one()
        )
    try:
        found = conn.execute(
            sa.text(
                "SELECT sum(pgsize) FROM dbstat WHERE name IN "
                "(SELECT name FROM sqlite_master WHERE tbl_name = :name)"
            ),
            {"name": name},
        ).scalar()
    except sa.exc.OperationalError:  # SQLite built without the dbstat table
        found = None
    return int(found or 0)
