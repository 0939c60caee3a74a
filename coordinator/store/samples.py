"""The raw tier: each node's samples as compact chunks (`core.chunks`), stored once per
(node, seq), and what the store holds of each node.

Exactly once: a batch's seqs already held by a stored chunk are dropped before it is
written. On PostgreSQL every writer first takes a transaction lock per node (in name
order, so two writers never wait on each other in a circle), so two ingest workers
given interleaved batches of one node see each other's chunks; SQLite has one writer.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from coordinator.core import chunks
from coordinator.core.rollups import bucket_start
from coordinator.core.storegaps import Found, Mark
from coordinator.store.dialect import insert_new, upsert
from coordinator.store.models import (
    CHUNK_SPAN_S,
    chunk_schemas,
    gpu_uuids,
    raw_chunks,
    rollup_dirty,
)
from shared.messages import MAX_SAMPLES, Sample, TelemetryBatch

Insert = Callable[[sa.Connection, sa.Table, Sequence[dict[str, Any]]], int]
MINUTE = 60.0
_known: set[tuple[str, object]] = set()  # (database, uuid row or schema) written already


@dataclass(frozen=True, slots=True)
class Piece:
    """Samples of one node, seq `seq_first` on, to be one chunk."""

    node: str
    seq_first: int
    samples: Sequence[Sample]


def insert_batches(
    conn: sa.Connection, batches: Sequence[TelemetryBatch], insert: Insert = insert_new
) -> int:
    """Store samples; (node, seq) already stored are skipped. Returns the samples stored
    (the rest were duplicates)."""
    if not batches:
        return 0
    nodes = sorted({b.node for b in batches})
    lock_nodes(conn, nodes)
    held = stored_ranges(conn, [(b.node, b.seq_first, b.seq_last) for b in batches])
    pieces = [p for b in batches for p in new_pieces(b, held[b.node])]
    rows: list[dict[str, Any]] = []
    dirty: set[tuple[str, float]] = set()
    blobs = chunks.encode([p.samples for p in pieces])
    for piece, blob in zip(pieces, blobs, strict=True):
        first, last = piece.samples[0], piece.samples[-1]
        rows.append(
            {
                "node": piece.node,
                "seq_first": piece.seq_first,
                "ts_first": first.ts,
                "seq_last": piece.seq_first + len(piece.samples) - 1,
                "ts_last": last.ts,
                "schema_id": chunks.CURRENT.id,
                "data": blob,
            }
        )
        dirty.update((piece.node, bucket_start(s.ts, MINUTE)) for s in piece.samples)
    _remember(conn, pieces)
    insert(conn, raw_chunks, rows)
    insert(conn, rollup_dirty, [{"node": n, "bucket": b} for n, b in sorted(dirty)])
    return sum(len(p.samples) for p in pieces)


def lock_nodes(conn: sa.Connection, nodes: Sequence[str]) -> None:
    """PostgreSQL: this transaction's lock on each node's raw tier (sorted: no deadlock)."""
    if conn.dialect.name == "postgresql" and nodes:
        conn.execute(
            sa.text(
                "SELECT pg_advisory_xact_lock(hashtext('dormouse.raw.' || n)) "
                "FROM unnest(CAST(:nodes AS text[])) WITH ORDINALITY AS t(n, i) ORDER BY i"
            ),
            {"nodes": list(nodes)},
        )


def stored_ranges(
    conn: sa.Connection, wanted: Sequence[tuple[str, int, int]]
) -> dict[str, list[tuple[int, int]]]:
    """Per node, the (seq_first, seq_last) of stored chunks meeting any wanted range."""
    held: dict[str, list[tuple[int, int]]] = defaultdict(list)
    spans: dict[str, list[int]] = {}
    for node, lo, hi in wanted:
        span = spans.setdefault(node, [lo, hi])
        span[0], span[1] = min(span[0], lo), max(span[1], hi)
    if conn.dialect.name != "postgresql":  # in-process: a query per node costs little
        for node, (lo, hi) in spans.items():
            query = sa.select(raw_chunks.c.seq_first, raw_chunks.c.seq_last).where(
                raw_chunks.c.node == node, *_overlapping(raw_chunks.c, lo, hi)
            )
            held[node].extend((int(a), int(b)) for a, b in conn.execute(query))
        return held
    items = list(spans.items())
    for i in range(0, len(items), MARKS_PER_QUERY):
        values = sa.values(
            sa.column("node", sa.String), sa.column("lo", sa.BigInteger),
            sa.column("hi", sa.BigInteger), name="wanted",
        ).data([(n, lo, hi) for n, (lo, hi) in items[i : i + MARKS_PER_QUERY]])  # fmt: skip
        query = sa.select(raw_chunks.c.node, raw_chunks.c.seq_first, raw_chunks.c.seq_last).join(
            values,
            sa.and_(
                raw_chunks.c.node == values.c.node,
                *_overlapping(raw_chunks.c, values.c.lo, values.c.hi),
            ),
        )
        for row in conn.execute(query):
            held[row[0]].append((int(row[1]), int(row[2])))
    return held


def _overlapping(chunk: Any, lo: Any, hi: Any) -> list[Any]:
    """Chunks holding a seq in [lo, hi]; a chunk holds at most MAX_SAMPLES seqs, which
    bounds the index range from below."""
    return [chunk.seq_first <= hi, chunk.seq_first > lo - MAX_SAMPLES, chunk.seq_last >= lo]


def new_pieces(batch: TelemetryBatch, held: list[tuple[int, int]]) -> list[Piece]:
    """The batch's samples not yet held, as chunks: runs of consecutive new seqs, cut where
    the layout changes or a chunk would span more than `CHUNK_SPAN_S`. Adds what it keeps
    to `held`, so a later batch of the same flush is checked against it."""
    pieces: list[Piece] = []
    current: list[Sample] = []
    start = 0
    for i, sample in enumerate(batch.samples):
        seq = batch.seq_first + i
        if any(lo <= seq <= hi for lo, hi in held):
            if current:
                pieces.append(Piece(batch.node, start, current))
            current = []
            continue
        if current and (
            sample.ts - current[0].ts > CHUNK_SPAN_S
            or chunks.layout_of(sample) != chunks.layout_of(current[0])
        ):
            pieces.append(Piece(batch.node, start, current))
            current = []
        if not current:
            start = seq
        current.append(sample)
    if current:
        pieces.append(Piece(batch.node, start, current))
    held.extend((p.seq_first, p.seq_first + len(p.samples) - 1) for p in pieces)
    return pieces


def _remember(conn: sa.Connection, pieces: Iterable[Piece]) -> None:
    """The chunk schema and each GPU's uuid, written once per database and process."""
    where = str(conn.engine.url)
    rows = []
    for piece in pieces:
        for gpu in piece.samples[0].gpus:
            key = (where, (piece.node, gpu.index, gpu.uuid))
            if key not in _known:
                _known.add(key)
                rows.append(
                    {
                        "node": piece.node,
                        "gpu_index": gpu.index,
                        "uuid": gpu.uuid,
                        "first_ts": piece.samples[0].ts,
                    }
                )
    if rows:
        conn.execute(upsert(conn, gpu_uuids).on_conflict_do_nothing(), rows)
    schema = chunks.CURRENT
    if (where, schema) not in _known:
        names = {"node": schema.node, "vectors": schema.vectors, "gpu": schema.gpu}
        conn.execute(
            upsert(conn, chunk_schemas).on_conflict_do_nothing(),
            [{"id": schema.id, "names": names}],
        )
        _known.add((where, schema))


def schemas(conn: sa.Connection) -> dict[int, chunks.Schema]:
    found = {chunks.CURRENT.id: chunks.CURRENT}
    for schema_id, names in conn.execute(sa.select(chunk_schemas)):
        found[int(schema_id)] = chunks.Schema(
            tuple(names["node"]), tuple(names["vectors"]), tuple(names["gpu"])
        )
    return found


def read_blocks(
    conn: sa.Connection, nodes: Sequence[str] | None, since: float, until: float
) -> dict[str, list[chunks.Block]]:
    """Per node, the decoded chunks holding samples stamped in [since, until), seq order
    (`nodes` None: every node)."""
    query = sa.select(
        raw_chunks.c.node, raw_chunks.c.seq_first, raw_chunks.c.schema_id, raw_chunks.c.data
    ).where(
        raw_chunks.c.ts_first >= since - CHUNK_SPAN_S,
        raw_chunks.c.ts_first < until,
        raw_chunks.c.ts_last >= since,
    )
    if nodes is not None:
        query = query.where(raw_chunks.c.node.in_(nodes))
    known = schemas(conn)
    found: dict[str, list[chunks.Block]] = defaultdict(list)
    for node, seq_first, schema_id, data in conn.execute(
        query.order_by(raw_chunks.c.node, raw_chunks.c.seq_first)
    ):
        found[node].append(chunks.decode(bytes(data), int(seq_first), known[int(schema_id)]))
    return found


def stored_high(conn: sa.Connection) -> dict[str, int]:
    rows = conn.execute(
        sa.select(raw_chunks.c.node, sa.func.max(raw_chunks.c.seq_last)).group_by(raw_chunks.c.node)
    )
    return {node: int(high) for node, high in rows}


RESTART_LOOKBACK = 3600  # seqs below each node's high a restart checks for holes (1 h at 1 Hz)


def holes(conn: sa.Connection) -> dict[str, list[tuple[int, int]]]:
    """Per node, the seqs missing between stored chunks in its last `RESTART_LOOKBACK` seqs:
    what a restarted coordinator asks for again (one query, either dialect). A hole at the
    window's start is not named (it may be the unused seqs below a new stream's start)."""
    top = (
        sa.select(raw_chunks.c.node, sa.func.max(raw_chunks.c.seq_last).label("high"))
        .group_by(raw_chunks.c.node)
        .subquery()
    )
    low = top.c.high - RESTART_LOOKBACK
    rows = conn.execute(
        sa.select(raw_chunks.c.node, raw_chunks.c.seq_first, raw_chunks.c.seq_last)
        .join(top, raw_chunks.c.node == top.c.node)
        .where(raw_chunks.c.seq_first > low - MAX_SAMPLES, raw_chunks.c.seq_last > low)
        .order_by(raw_chunks.c.node, raw_chunks.c.seq_first)
    )
    held: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for node, first, last in rows:
        held[node].append((int(first), int(last)))
    found = {}
    for node, ranges in held.items():
        between = [(a[1] + 1, b[0] - 1) for a, b in itertools.pairwise(ranges)]
        if between := [(lo, hi) for lo, hi in between if lo <= hi]:
            found[node] = between
    return found


MARKS_PER_QUERY = 1000


def _marks(chunk: Sequence[Mark]) -> Any:
    return sa.values(
        sa.column("node", sa.String),
        sa.column("above", sa.BigInteger),
        sa.column("horizon", sa.Double),
        name="marks",
    ).data([(m.node, m.above, m.horizon) for m in chunk])


def _held_above(conn: sa.Connection, marks: Sequence[Mark]) -> dict[str, list[tuple[int, int]]]:
    """Per node, the seq ranges stored above its mark, in chunks begun by its horizon."""
    found: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for i in range(0, len(marks), MARKS_PER_QUERY):
        values = _marks(marks[i : i + MARKS_PER_QUERY])
        rows = conn.execute(
            sa.select(raw_chunks.c.node, raw_chunks.c.seq_first, raw_chunks.c.seq_last)
            .select_from(
                raw_chunks.join(
                    values,
                    sa.and_(
                        raw_chunks.c.node == values.c.node,
                        raw_chunks.c.seq_first > values.c.above - MAX_SAMPLES,
                        raw_chunks.c.seq_last > values.c.above,
                        raw_chunks.c.ts_first <= values.c.horizon,
                    ),
                )
            )
            .order_by(raw_chunks.c.node, raw_chunks.c.seq_first)
        )
        above = {m.node: m.above for m in marks}
        for node, first, last in rows:
            found[node].append((max(int(first), above[node] + 1), int(last)))
    return found


def found_above(conn: sa.Connection, marks: Sequence[Mark]) -> dict[str, Found]:
    """Per node: how many samples are stored above its mark, and the highest (each node
    costs one index range of its chunks)."""
    return {
        node: Found(sum(b - a + 1 for a, b in held), max(b for _, b in held))
        for node, held in _held_above(conn, marks).items()
    }


def seqs_above(conn: sa.Connection, marks: Sequence[Mark]) -> dict[str, list[int]]:
    """The stored seqs above each node's mark, ascending (for the nodes with holes)."""
    seqs: dict[str, list[int]] = {m.node: [] for m in marks}
    for node, held in _held_above(conn, marks).items():
        for first, last in held:
            seqs[node].extend(range(first, last + 1))
    return seqs
