"""Which `dormouse run` process leads: runs placement, power, gap resends, node rows and
maintenance. Every process ingests (MQTT in, SQL out); only the leader decides.

On PostgreSQL the leader is the holder of a session advisory lock, taken on a connection of
its own and kept for as long as that connection lives. A standby tries for it every
`lease_s / 5`; when the leader dies (kill -9: its socket closes at once; a host or network
lost: the server's TCP keepalives, set on the lock's session, notice within ~`lease_s`) the
server releases the lock and a standby takes over. The leader checks its lock connection
every `lease_s / 3` and steps down the moment the check fails or hangs past that, so a
leader cut off from the store stops deciding before a standby can start.

Each takeover bumps the stored epoch (`store.leadership.take`), and every command the
leader signs carries it: an agent refuses a command from an epoch below the highest it has
seen, so a leader that was paused (a VM frozen, a long GC) and wakes up still believing it
leads can neither place nor sleep anything (fencing, not only the lock).

On SQLite there is one process (the file is the lock): it leads from the start, at a new
epoch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable

import sqlalchemy as sa

from coordinator.store import leadership as leader_rows
from shared.clock import Clock
from shared.edge.tasks import Stopping

log = logging.getLogger(__name__)
LOCK_CLASS = 0x646F726D  # "dorm"; the lock's second key is the schema's hash: one per store
KEEPALIVE = (
    "SET tcp_keepalives_idle = {idle}; SET tcp_keepalives_interval = {interval}; "
    "SET tcp_keepalives_count = 2"
)


def holder_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Leadership:
    def __init__(
        self,
        engine: sa.Engine,
        clock: Clock,
        stopping: Stopping,
        *,
        lease_s: float = 10.0,
        holder: str | None = None,
    ) -> None:
        self._engine, self._clock, self._stopping = engine, clock, stopping
        self.lease_s = lease_s
        self.holder = holder or holder_id()
        self.epoch = 0  # 0 until this process first leads
        self.since: float | None = None
        self.leading = asyncio.Event()
        self._conn: sa.Connection | None = None
        self._rest_until = 0.0  # handed the lead over: not taken back before this
        self._on_lead: list[Callable[[], Awaitable[None]]] = []
        if not self.shared:
            self.leading.set()  # the lone process: from the first message on (`run` records it)

    @property
    def shared(self) -> bool:
        """Several processes may share the store (PostgreSQL): leadership is contested."""
        return self._engine.dialect.name == "postgresql"

    @property
    def command_epoch(self) -> int:
        """The epoch the leader's commands carry: 0 for a lone process (the wire format from
        before leadership, which agents do not fence)."""
        return self.epoch if self.shared else 0

    def on_lead(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Awaited at each takeover, before the first pass: reload what the last leader kept."""
        self._on_lead.append(callback)

    async def run(self) -> None:
        try:
            if not self.shared:
                await self._try()  # record the lone process's lead (it leads already)
            while not self._stopping.requested:
                if self.leading.is_set():
                    await self._check()
                    await asyncio.sleep(self.lease_s / 3)
                else:
                    if self._clock.now() >= self._rest_until:
                        await self._try()
                    if not self.leading.is_set():
                        await asyncio.sleep(self.lease_s / 5)
        finally:
            self._drop()

    async def _try(self) -> None:
        try:
            got = await asyncio.to_thread(self._acquire)
        except sa.exc.SQLAlchemyError as exc:
            self._drop()
            log.warning("leadership: cannot reach the store (%s)", exc.__class__.__name__)
            return
        if got:
            await self._lead()

    def _acquire(self) -> bool:
        """Take the lock (PostgreSQL) and record the takeover; True when this process leads."""
        if not self.shared:
            with self._engine.begin() as conn:
                self.epoch = leader_rows.take(conn, self.holder, self._clock.now())
            return True
        if self._conn is None:
            self._conn = self._engine.connect()
            interval = max(int(self.lease_s / 5), 1)
            for statement in KEEPALIVE.format(idle=interval, interval=interval).split("; "):
                self._conn.execute(sa.text(statement))
            self._conn.commit()
        got = self._conn.execute(
            sa.text("SELECT pg_try_advisory_lock(:cls, hashtext(current_schema()))"),
            {"cls": LOCK_CLASS},
        ).scalar_one()
        self._conn.commit()
        if not got:
            return False
        with self._engine.begin() as conn:
            self.epoch = leader_rows.take(conn, self.holder, self._clock.now())
        return True

    async def _lead(self) -> None:
        self.since = self._clock.now()
        for callback in self._on_lead:
            await callback()
        self.leading.set()
        log.info("leading at epoch %d (%s)", self.epoch, self.holder)

    async def _check(self) -> None:
        """Still holding the lock? A failed or hung check steps down at once. (A lone
        process cannot lose the lead: it only notes the time.)"""
        if not self.shared:
            with contextlib.suppress(sa.exc.SQLAlchemyError):
                await asyncio.to_thread(self._renew)
            return
        try:
            async with asyncio.timeout(self.lease_s / 3):
                still = await asyncio.to_thread(self._renew)
        except (TimeoutError, sa.exc.SQLAlchemyError) as exc:
            self._step_down(f"the lock's connection failed ({exc.__class__.__name__})")
            return
        if not still:
            self._step_down("the store names another leader")

    def _renew(self) -> bool:
        if self._conn is not None:
            self._conn.execute(sa.text("SELECT 1"))
            self._conn.commit()
        with self._engine.begin() as conn:
            return leader_rows.renew(conn, self.holder, self.epoch, self._clock.now())

    def hand_over(self, why: str, rest_s: float) -> None:
        """Step down and stay a standby for `rest_s`, so another process leads (one whose
        passes do not fail); the lone process of a SQLite store keeps its lead."""
        if self.shared:
            self._rest_until = self._clock.now() + rest_s
            self._step_down(f"{why}; handing the lead to a standby for {rest_s:.0f} s")

    def _step_down(self, why: str) -> None:
        self.leading.clear()
        self.since = None
        self._drop()
        log.error("no longer leading (epoch %d): %s", self.epoch, why)

    def _drop(self) -> None:
        """Close the lock's connection (the server releases the lock with it)."""
        if self._conn is not None:
            with contextlib.suppress(sa.exc.SQLAlchemyError):
                self._conn.invalidate()
                self._conn.close()
            self._conn = None
