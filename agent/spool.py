"""The agent's store-and-forward spool: one SQLite file (WAL) of samples, each written
before it is sent.

* Seqs are assigned in the same transaction as the row, so they survive restarts and
  `kill -9` with neither reuse nor gaps.
* A new spool file starts a new stream: its first seq is the wall clock in milliseconds
  (`stream_origin`), above any seq an older spool of this node reached (one sample per
  millisecond at most), and every batch carries it (`stream_first`). A lost or emptied
  spool so never reuses seqs the coordinator has stored.
* Unsent samples are replayed in seq order; sent ones stay for `keep_s` after sending, so the
  coordinator can ask for a gap to be resent.
* The payload bytes are capped at `max_bytes`: the oldest samples go first, and the number of
  never-sent samples dropped that way is reported in the next telemetry (`spool_dropped`).
* Writes are grouped: samples wait in memory and go to the file in one transaction every
  `flush_every_s` (the agent's publish interval) and always before any of them is sent, so
  the disk sees one commit (and one fsync: `synchronous=FULL`) per interval, not one per
  sample. What a crash or power cut can lose is the samples of the current interval, never
  sent: the seqs durably taken stop before them, so they are taken again after the restart
  and no seq the coordinator stored is ever reused. Everything sent was committed and
  fsynced first, so the coordinator's resend requests always find it.
* A write that fails (disk full, read-only) does not stop sampling: samples are held in
  memory (within `max_bytes`, oldest dropped and reported), sent from there, and written
  to the file again once it takes writes (tried every `RETRY_S`). `degraded` says why.
  What memory held is lost if the agent stops before the disk recovers.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from collections import deque
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import msgpack

from agent.storefiles import checked
from shared.clock import Clock
from shared.codec import VERSION, frame, unpack_map
from shared.messages import Sample, TelemetryBatch

SPOOL_FILE = "spool.sqlite3"
RETRY_S = 10.0  # how often a spool that failed a write is tried again
log = logging.getLogger(__name__)
BATCH_BYTES = 192 * 1024  # msgpack bytes per batch: stays under the codec's compressed cap
SCHEMA = """
CREATE TABLE IF NOT EXISTS samples (
    seq INTEGER PRIMARY KEY,
    sent_at REAL,
    body BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS samples_unsent ON samples (seq) WHERE sent_at IS NULL;
CREATE INDEX IF NOT EXISTS samples_sent_at ON samples (sent_at) WHERE sent_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class SpooledBatch:
    """A `TelemetryBatch` as the spool holds it: the samples' msgpack bodies, each checked
    once when it was sampled (`Sample` validates on construction), are framed as they are,
    not decoded and checked again at every send. `payload()` is byte for byte what
    `codec.encode` makes of `message()` (a test holds the two equal)."""

    node: str
    seq_first: int
    bodies: tuple[bytes, ...]
    spool_dropped: int = 0
    stream_first: int = 0

    @property
    def seq_last(self) -> int:
        return self.seq_first + len(self.bodies) - 1

    def payload(self) -> bytes:
        """The telemetry message's wire bytes (LZ4 frame of msgpack), keys in field order."""
        packer = msgpack.Packer(use_bin_type=True)
        head = [("v", VERSION), ("node", self.node), ("seq_first", self.seq_first)]
        tail = [("spool_dropped", self.spool_dropped), ("stream_first", self.stream_first)]
        parts = [packer.pack_map_header(len(head) + 1 + len(tail))]
        parts += [packer.pack(k) + packer.pack(v) for k, v in head]
        parts += [packer.pack("samples"), packer.pack_array_header(len(self.bodies)), *self.bodies]
        parts += [packer.pack(k) + packer.pack(v) for k, v in tail]
        return frame(b"".join(parts))

    def message(self) -> TelemetryBatch:
        """The batch decoded and checked in full (tests, `dormouse-agent` diagnostics)."""
        samples = tuple(
            Sample.from_wire(unpack_map(body), f"spool seq {self.seq_first + i}")
            for i, body in enumerate(self.bodies)
        )
        return TelemetryBatch(
            node=self.node,
            seq_first=self.seq_first,
            samples=samples,
            spool_dropped=self.spool_dropped,
            stream_first=self.stream_first,
        )


def stream_origin(now: float) -> int:
    """The first seq of a new spool: milliseconds since the epoch."""
    return int(now * 1000)


class Spool:
    def __init__(
        self,
        directory: Path,
        node: str,
        clock: Clock,
        *,
        max_bytes: int = 64 * 2**20,
        keep_s: float = 3600.0,
        memory_only: str | None = None,
        flush_every_s: float = 0.0,
        claim: bool = True,
    ) -> None:
        """`memory_only`: why the file cannot be used; the spool then lives in memory (a
        restart starts a new stream, so no seq is ever reused). `claim`: this process is the
        agent that numbers samples (`check` only looks: it neither marks the file running nor
        starts a stream)."""
        self.path = directory / SPOOL_FILE
        if memory_only is None:
            directory.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(":memory:" if memory_only else self.path, isolation_level=None)
        if memory_only is None:
            checked(self._db)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # a commit survives a power cut
        self._db.executescript(SCHEMA)
        self._node, self._clock = node, clock
        self._max_bytes, self._keep_s = max_bytes, keep_s
        self.created = self._fresh()
        if self.created:
            origin = stream_origin(clock.now())
            self._set_meta("next_seq", origin)
            self._set_meta("stream_first", origin)
        self.stream_first = self._meta("stream_first")  # 0: a spool from before streams
        self.prior_stream_first = self._meta("prior_stream_first")  # before an unclean stop
        self.next_seq = max(
            self._meta("next_seq"), self._scalar("SELECT max(seq) + 1 FROM samples")
        )
        self._claim = claim and memory_only is None
        self.unclean = self._claim and not self.created and bool(self._meta("running"))
        self.bytes = self._scalar("SELECT sum(length(body)) FROM samples")
        self._last_expiry = 0.0
        self._held: deque[tuple[int, bytes]] = deque()  # (seq, body) not yet in the file
        self._held_bytes = self._held_dropped = 0
        self._retry_at = 0.0
        self.degraded: str | None = memory_only
        self._memory_only = memory_only is not None
        self._acked_through = -1  # acknowledged up to here, whether or not the file says so
        self._marks: list[tuple[float, int, int]] = []  # (sent at, first, last): next write's
        self._reported_pending = 0  # file drops reported upstream, not yet written down
        self._flush_every_s = flush_every_s
        self._flushed_at = clock.now()
        if self._claim:
            self._claim_file(clock.now())

    def _claim_file(self, now: float) -> None:
        """Mark the file running until a clean `close`. Found running, the last agent
        stopped without closing (kill -9, a crash, a power cut): while its disk was full it
        may have sent samples under seqs the file never took, so numbering goes on in a new
        stream (above any seq it can have used), never from the file's last seq. A file that
        takes no write now gets the new stream in memory only (the file's own, older stream
        is then below it, and a later start numbers from there without reusing a seq)."""
        if self.unclean:
            origin = max(stream_origin(now), self.next_seq)
            self.prior_stream_first = self.stream_first
            self.stream_first = self.next_seq = origin
            log.warning(
                "spool %s was not closed cleanly: numbering samples in a new stream from %d",
                self.path,
                origin,
            )
        try:
            with self._transaction():
                if self.unclean:
                    self._set_meta("prior_stream_first", self.prior_stream_first)
                    self._set_meta("stream_first", self.stream_first)
                    self._set_meta("next_seq", self.next_seq)
                self._set_meta("running", 1)
        except sqlite3.OperationalError as exc:
            if not self.unclean:  # numbering on from the file could reuse this run's seqs
                self.prior_stream_first = self.stream_first
                self.stream_first = self.next_seq = max(stream_origin(now), self.next_seq)
            self.degraded = f"cannot write {self.path}: {exc}"
            self._retry_at = now + RETRY_S
            log.error("%s: samples held in memory, numbered in a new stream", self.degraded)

    def close(self) -> None:
        """Write what memory holds and, if all of it reached the file, mark the file closed
        cleanly (the next start numbers on from it)."""
        self.flush()
        if self._claim and not self._held and self.degraded is None:
            with contextlib.suppress(sqlite3.OperationalError):
                self._set_meta("running", 0)
        self._db.close()

    def flush(self) -> None:
        """Write what memory holds now (one transaction), unless the file is failing and its
        retry is not due."""
        self._flushed_at = self._clock.now()
        if self._held or self._marks:
            self._write_held()

    def _scalar(self, sql: str, *args: object) -> int:
        row = self._db.execute(sql, args).fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def _fresh(self) -> bool:
        has_seq = self._scalar("SELECT count(*) FROM meta WHERE key = 'next_seq'")
        return not has_seq and not self._scalar("SELECT count(*) FROM samples")

    def _meta(self, key: str) -> int:
        return self._scalar("SELECT value FROM meta WHERE key = ?", key)

    def _set_meta(self, key: str, value: int) -> None:
        self._db.execute(
            "INSERT INTO meta VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    @property
    def dropped_unreported(self) -> int:
        return max(0, self._meta("dropped") - self._reported_pending)

    def _unreported(self) -> int:
        return self.dropped_unreported + self._held_dropped

    @property
    def held(self) -> int:
        """Unsent samples in memory because the file would not take them (all of them
        when the spool lives in memory)."""
        if self._memory_only:
            return len(self._held) + self._scalar(
                "SELECT count(*) FROM samples WHERE sent_at IS NULL AND seq > ?",
                self._acked_through,
            )
        return len(self._held) if self.degraded is not None else 0  # else: the next flush's

    def append(self, sample: Sample) -> int:
        """Take one sample and return its seq; it reaches the file with the others of its
        interval (`flush`), or stays in memory while the file fails."""
        body = msgpack.packb(sample.to_wire(), use_bin_type=True)
        seq = self.next_seq
        self.next_seq = seq + 1
        self._held.append((seq, body))
        self._held_bytes += len(body)
        if self._clock.now() - self._flushed_at >= self._flush_every_s:
            self.flush()
        while self._held_bytes > self._max_bytes:
            self._held_bytes -= len(self._held.popleft()[1])
            self._held_dropped += 1
        return seq

    def _write_held(self) -> None:
        """Move what memory holds into the file, with the sends acknowledged since the last
        write (one transaction): at once normally, every RETRY_S when the last failed."""
        now = self._clock.now()
        if self.degraded is not None and now < self._retry_at:
            return
        try:
            with self._transaction():
                self._db.executemany("INSERT INTO samples (seq, body) VALUES (?, ?)", self._held)
                self._set_meta("next_seq", self.next_seq)
                self._db.executemany(
                    "UPDATE samples SET sent_at = ? WHERE seq BETWEEN ? AND ?", self._marks
                )
                if self._held_dropped or self._reported_pending:
                    self._set_meta("dropped", self.dropped_unreported + self._held_dropped)
        except sqlite3.OperationalError as exc:
            self._retry_at = now + RETRY_S
            if self.degraded is None:
                self.degraded = f"cannot write {self.path}: {exc}"
                log.error("%s: holding samples in memory until it can", self.degraded)
            return
        if self.degraded is not None and not self._memory_only:
            log.warning(
                "spool %s takes writes again: %d held samples written", self.path, len(self._held)
            )
            self.degraded = None
        self.bytes += self._held_bytes
        self._held.clear()
        self._held_bytes = self._held_dropped = self._reported_pending = 0
        self._marks.clear()
        self._enforce_limits()

    def next_unsent(self) -> SpooledBatch | None:
        """The oldest unsent samples as one batch (a contiguous run of seqs), or None: from
        the file first, then from memory (held samples are newer: only while the file
        fails, as what memory holds is written first)."""
        self.flush()
        rows = self._db.execute(
            "SELECT seq, body FROM samples WHERE sent_at IS NULL AND seq > ? ORDER BY seq "
            "LIMIT 2000",
            (self._acked_through,),
        )
        return self._first_batch(rows, self._unreported()) or self._first_batch(
            iter(list(self._held)[:2000]), self._unreported()
        )

    def mark_sent(self, batch: SpooledBatch) -> None:
        """The broker has acknowledged `batch`: keep it for resends, stop replaying it. Held
        samples leave memory once sent (they cannot be resent later). The file learns it
        with the next write (no transaction of its own: a crash before then replays the
        batch, which the coordinator files as a duplicate)."""
        self._acked_through = max(self._acked_through, batch.seq_last)
        while self._held and self._held[0][0] <= batch.seq_last:
            self._held_bytes -= len(self._held.popleft()[1])
        from_memory = min(batch.spool_dropped, self._held_dropped)  # reported drops: memory's
        self._held_dropped -= from_memory  # first, then the file's
        self._reported_pending += batch.spool_dropped - from_memory
        self._marks.append((self._clock.now(), batch.seq_first, batch.seq_last))

    def resend(self, from_seq: int, to_seq: int) -> Iterator[SpooledBatch]:
        """Batches covering what the spool still holds of [from_seq, to_seq]."""
        start = from_seq
        while start <= to_seq:
            rows = self._db.execute(
                "SELECT seq, body FROM samples WHERE seq BETWEEN ? AND ? ORDER BY seq LIMIT 2000",
                (start, to_seq),
            )
            batch = self._first_batch(rows, 0)
            if batch is None:
                return
            yield batch
            start = batch.seq_last + 1

    def _first_batch(self, rows: Iterable[tuple[int, bytes]], dropped: int) -> SpooledBatch | None:
        bodies: list[bytes] = []
        seq_first = size = 0
        for seq, body in rows:
            if bodies and (seq != seq_first + len(bodies) or size + len(body) > BATCH_BYTES):
                break
            if not bodies:
                seq_first = seq
            bodies.append(body)
            size += len(body)
        if not bodies:
            return None
        return SpooledBatch(
            node=self._node,
            seq_first=seq_first,
            bodies=tuple(bodies),
            spool_dropped=dropped,
            stream_first=self._stream_of(seq_first),
        )

    def _stream_of(self, seq: int) -> int:
        """The stream a seq was numbered in: the current one, the one before an unclean stop
        (its unsent or resent samples), or unknown (0) for older ones."""
        if seq >= self.stream_first:
            return self.stream_first
        return self.prior_stream_first if seq >= self.prior_stream_first else 0

    def _enforce_limits(self) -> None:
        now = self._clock.now()
        if now - self._last_expiry >= 60:
            self._last_expiry = now
            self._delete("sent_at IS NOT NULL AND sent_at < ?", now - self._keep_s)
        while self.bytes > self._max_bytes:
            self._drop_oldest()

    def _drop_oldest(self) -> None:
        rows = self._db.execute(
            "SELECT seq, length(body), sent_at IS NULL AND seq > ? FROM samples ORDER BY seq "
            "LIMIT 256",
            (self._acked_through,),
        ).fetchall()
        if not rows:  # nothing left to drop: the running total was off
            self.bytes = 0
            return
        freed = lost = 0
        last = rows[0][0]
        for seq, size, unsent in rows:
            if self.bytes - freed <= self._max_bytes:
                break
            freed, lost, last = freed + size, lost + unsent, seq
        with self._transaction():
            self._db.execute("DELETE FROM samples WHERE seq <= ?", (last,))
            self._set_meta("dropped", self._meta("dropped") + lost)  # raw: pending reports stay
        self.bytes -= freed

    def _delete(self, where: str, *args: object) -> None:
        freed = self._scalar(f"SELECT sum(length(body)) FROM samples WHERE {where}", *args)  # noqa: S608
        with self._transaction():
            self._db.execute(f"DELETE FROM samples WHERE {where}", args)  # noqa: S608
        self.bytes -= freed

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")
