"""The leadership row: which process leads, since when, at which epoch.

Holding the lock is what makes a process the leader (`coordinator.daemon.leadership`); this
row is what it says about itself, for `dormouse status` and for fencing: each takeover
bumps `epoch`, and every command the leader signs carries it.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from coordinator.store.dialect import upsert
from coordinator.store.models import leadership


@dataclass(frozen=True, slots=True)
class Leader:
    holder: str
    epoch: int
    since: float
    renewed_at: float


def take(conn: sa.Connection, holder: str, now: float) -> int:
    """Record a takeover by `holder` (which holds the lock) and return its epoch: the
    takeover's time in whole seconds, or the last epoch + 1 if that is more, so a rebuilt
    store never starts below an epoch agents have already seen."""
    last = current(conn)
    epoch = max(int(now), 1 if last is None else last.epoch + 1)
    row = {"epoch": epoch, "holder": holder, "since": now, "renewed_at": now}
    statement = upsert(conn, leadership).values(one=1, **row)
    conn.execute(statement.on_conflict_do_update(index_elements=["one"], set_=row))
    return epoch


def renew(conn: sa.Connection, holder: str, epoch: int, now: float) -> bool:
    """Note that the holder still holds the lock; False if the row says another leads."""
    done = conn.execute(
        sa.update(leadership)
        .where(leadership.c.holder == holder, leadership.c.epoch == epoch)
        .values(renewed_at=now)
    ).rowcount
    return bool(done)


def current(conn: sa.Connection) -> Leader | None:
    row = conn.execute(sa.select(leadership)).first()
    return None if row is None else Leader(row.holder, row.epoch, row.since, row.renewed_at)
