"""The raw tier's encoding, pure: a run of one node's samples as one compact, lossless chunk.

Prometheus and Gorilla keep ~120 samples of a series in a chunk, timestamps as deltas and
floats XORed with the previous value; ALP (SIGMOD 2023) adds that most telemetry floats are
decimals (12.5 %, 312.471 W) and are stored best as scaled integers. A chunk here is one
node's samples laid out as a matrix (a row per sample, a column per value: the stamp, each
node metric, each element of a vector metric, each GPU metric of each GPU), then per column:

* a column whose every value is `v = i / 10**k` exactly (k <= 6) is stored as the integers
  `i`, delta-coded down the column and zigzagged (small steps, small numbers);
* any other column is stored as its IEEE-754 bits XORed with the previous row's;

then byte-shuffled (the eight bytes of every value in eight planes, as Blosc does, so the
zero high bytes of small deltas and XORs line up) and deflated. It is exact: decoding gives
back every value bit for bit, absent values (None) included; integer metrics beyond 2**53,
which a float cannot hold, make the chunk fall back to msgpack of the samples.

Chunks of the same shape are encoded together, as one array, so the per-column work is a
few numpy passes over a whole flush rather than over each batch.
"""

from __future__ import annotations

import struct
import zlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import msgpack
import numpy as np

from shared.messages import GpuSample, Sample
from shared.metrics import BY_NAME, Metric, Scope, metrics_in

FORMAT_MATRIX, FORMAT_MSGPACK = 1, 2
MAX_DECIMALS = 6
EXACT_INT = 2**53
NO_VECTOR = 0xFFFF  # a vector metric the sample did not carry
NODE_SCALARS: tuple[Metric, ...] = tuple(m for m in metrics_in(Scope.NODE) if not m.vector)
NODE_VECTORS: tuple[Metric, ...] = tuple(m for m in metrics_in(Scope.NODE) if m.vector)
GPU_METRICS: tuple[Metric, ...] = metrics_in(Scope.GPU)
_HEAD = struct.Struct("<BHB")  # format, samples, GPUs
_POWERS = 10.0 ** np.arange(MAX_DECIMALS + 1)


@dataclass(frozen=True, slots=True)
class Schema:
    """The metric names a chunk's columns follow: a chunk written before a metric was added
    still decodes (its schema is kept in the store by `id`)."""

    node: tuple[str, ...]
    vectors: tuple[str, ...]
    gpu: tuple[str, ...]

    @property
    def id(self) -> int:
        return zlib.crc32("|".join((*self.node, "/", *self.vectors, "/", *self.gpu)).encode())


CURRENT = Schema(
    tuple(m.name for m in NODE_SCALARS),
    tuple(m.name for m in NODE_VECTORS),
    tuple(m.name for m in GPU_METRICS),
)


@dataclass(frozen=True, slots=True)
class Layout:
    """What the columns of a chunk are: each vector metric's length (NO_VECTOR: absent) and
    the GPU indices, the same for every sample of the chunk."""

    vectors: tuple[int, ...]
    gpus: tuple[int, ...]

    def width(self, schema: Schema) -> int:
        lengths = sum(n for n in self.vectors if n != NO_VECTOR)
        return 1 + len(schema.node) + lengths + len(self.gpus) * len(schema.gpu)


@dataclass(frozen=True, slots=True)
class Block:
    """A decoded chunk: a row per sample; NaN where the sample had no value."""

    layout: Layout
    schema: Schema
    seq_first: int
    values: np.ndarray  # float64, (samples, width): ts first
    original: tuple[Sample, ...] = ()  # a msgpack chunk's samples, exact beyond 2**53

    @property
    def ts(self) -> np.ndarray:
        return self.values[:, 0]

    def column(self, metric: str, gpu: int = -1) -> np.ndarray | None:
        """A metric's values (a GPU's, for GPU metrics); None if the chunk has no such
        column."""
        at = column_index(self.schema, self.layout, metric, gpu)
        return None if at is None else self.values[:, at]


def column_index(schema: Schema, layout: Layout, metric: str, gpu: int = -1) -> int | None:
    if gpu < 0:
        return 1 + schema.node.index(metric) if metric in schema.node else None
    if metric not in schema.gpu or gpu not in layout.gpus:
        return None
    base = layout.width(schema) - len(layout.gpus) * len(schema.gpu)
    return base + layout.gpus.index(gpu) * len(schema.gpu) + schema.gpu.index(metric)


def layout_of(sample: Sample) -> Layout:
    vectors = tuple(
        NO_VECTOR if (v := sample.metrics.get(m.name)) is None else len(v) for m in NODE_VECTORS
    )
    return Layout(vectors, tuple(g.index for g in sample.gpus))


def runs(samples: Sequence[Sample]) -> list[tuple[int, int]]:
    """[start, end) index ranges of consecutive samples with one layout: a chunk each."""
    found: list[tuple[int, int]] = []
    start = 0
    for i in range(1, len(samples) + 1):
        if i == len(samples) or layout_of(samples[i]) != layout_of(samples[start]):
            found.append((start, i))
            start = i
    return found


def _row(sample: Sample) -> list[float | int | None]:
    get = sample.metrics.get
    row: list[float | int | None] = [sample.ts, *map(get, CURRENT.node)]
    for name in CURRENT.vectors:
        row.extend(get(name) or ())
    for gpu in sample.gpus:
        row.extend(map(gpu.metrics.get, CURRENT.gpu))
    return row


def _matrix(samples: Sequence[Sample]) -> np.ndarray | None:
    """Float64 rows (NaN: None); None when an integer is beyond a float's exact range."""
    rows = [_row(s) for s in samples]
    matrix = np.array(rows, dtype=np.float64)  # None becomes NaN
    big = np.abs(np.nan_to_num(matrix)) >= EXACT_INT
    if big.any() and any(
        isinstance(v, int) and abs(v) >= EXACT_INT for r in rows for v in r if v is not None
    ):
        return None
    return matrix


def encode(chunks: Sequence[Sequence[Sample]]) -> list[bytes]:
    """Each run of samples (one layout, `runs`) as a chunk, in order."""
    out: list[bytes | None] = [None] * len(chunks)
    shapes: dict[tuple[Layout, int], list[tuple[int, np.ndarray]]] = defaultdict(list)
    for i, chunk in enumerate(chunks):
        matrix = _matrix(chunk)
        if matrix is None:
            out[i] = _fallback(chunk)
        else:
            shapes[(layout_of(chunk[0]), len(chunk))].append((i, matrix))
    for (layout, _), members in shapes.items():
        stacked = np.stack([m for _, m in members])
        for (i, _), blob in zip(members, encode_arrays(stacked, layout), strict=True):
            out[i] = blob
    return [b for b in out if b is not None]


def _header(layout: Layout, samples: int, fmt: int) -> bytes:
    head = _HEAD.pack(fmt, samples, len(layout.gpus)) + bytes(layout.gpus)
    return head + struct.pack(f"<{len(layout.vectors)}H", *layout.vectors)


def encode_arrays(stacked: np.ndarray, layout: Layout) -> list[bytes]:
    """(chunks, samples, width) float64 arrays of one layout, each to its chunk."""
    nulls = np.isnan(stacked)
    filled = np.where(nulls, 0.0, stacked)
    kinds, scaled = decimal_columns(filled)
    ints = np.diff(scaled, axis=1, prepend=np.zeros_like(scaled[:, :1]))
    ints = (ints << 1) ^ (ints >> 63)  # zigzag: small negatives are small too
    bits = filled.view(np.uint64)
    xored = bits.copy()
    xored[:, 1:] ^= bits[:, :-1]
    head = _header(layout, stacked.shape[1], FORMAT_MATRIX)
    blobs = []
    for c in range(stacked.shape[0]):
        decimal = kinds[c] >= 0
        parts = [
            head,
            bytes([int(nulls[c].any())]),
            kinds[c].astype(np.int8).tobytes(),
            np.packbits(nulls[c]).tobytes() if nulls[c].any() else b"",
            _shuffle(ints[c][:, decimal]),
            _shuffle(xored[c][:, ~decimal]),
        ]
        blobs.append(zlib.compress(b"".join(parts), 3))
    return blobs


def decimal_columns(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per chunk and column, the fewest decimals k that hold every value exactly (-1: none),
    and the values times 10**k as integers (0 where k is -1)."""
    kinds = np.full((values.shape[0], values.shape[2]), -1, dtype=np.int64)
    scaled = np.zeros(values.shape, dtype=np.int64)
    with np.errstate(over="ignore", invalid="ignore"):
        for k, power in enumerate(_POWERS):
            times = np.round(values * power)
            exact = ((times / power) == values) & (np.abs(times) < EXACT_INT)
            fits = exact.all(axis=1) & (kinds < 0)
            if fits.any():
                kinds[fits] = k
                scaled = np.where(fits[:, None, :], times, scaled).astype(np.int64)
            if (kinds >= 0).all():
                break
    return kinds, scaled


def _shuffle(columns: np.ndarray) -> bytes:
    """(samples, n) 8-byte values, column by column, then byte plane by byte plane."""
    data = np.ascontiguousarray(columns.T).view(np.uint8).reshape(-1, 8)
    return np.ascontiguousarray(data.T).tobytes()


def _unshuffle(data: bytes, samples: int, columns: int) -> np.ndarray:
    planes = np.frombuffer(data, dtype=np.uint8).reshape(8, -1)
    return np.ascontiguousarray(planes.T).view(np.uint64).reshape(columns, samples).T


def decode(blob: bytes, seq_first: int, schema: Schema) -> Block:
    raw = zlib.decompress(blob)
    fmt, samples, gpus = _HEAD.unpack_from(raw)
    at = _HEAD.size
    indices = tuple(raw[at : at + gpus])
    at += gpus
    vectors = struct.unpack_from(f"<{len(schema.vectors)}H", raw, at)
    at += 2 * len(schema.vectors)
    layout = Layout(tuple(vectors), indices)
    if fmt == FORMAT_MSGPACK:
        kept = tuple(Sample.from_wire(s) for s in msgpack.unpackb(raw[at:]))
        rows = np.array([_row(s) for s in kept], dtype=np.float64)
        return Block(layout, CURRENT, seq_first, rows, kept)
    width = layout.width(schema)
    has_nulls = raw[at]
    kinds = np.frombuffer(raw, dtype=np.int8, count=width, offset=at + 1).astype(np.int64)
    at += 1 + width
    nulls = None
    if has_nulls:
        size = (samples * width + 7) // 8
        flat = np.unpackbits(np.frombuffer(raw, np.uint8, size, at))[: samples * width]
        nulls = flat.reshape(samples, width).astype(bool)
        at += size
    decimal = kinds >= 0
    n_int = int(decimal.sum()) * samples * 8
    values = np.empty((samples, width), dtype=np.float64)
    zig = _unshuffle(raw[at : at + n_int], samples, int(decimal.sum())).astype(np.int64)
    deltas = (zig >> 1) ^ -(zig & 1)
    values[:, decimal] = np.cumsum(deltas, axis=0) / _POWERS[kinds[decimal]]
    bits = _unshuffle(raw[at + n_int :], samples, int((~decimal).sum()))
    values[:, ~decimal] = np.bitwise_xor.accumulate(bits, axis=0).view(np.float64)
    if nulls is not None:
        values[nulls] = np.nan
    return Block(layout, schema, seq_first, values)


def _fallback(samples: Sequence[Sample]) -> bytes:
    layout = layout_of(samples[0])
    body = msgpack.packb([s.to_wire() for s in samples])
    return zlib.compress(_header(layout, len(samples), FORMAT_MSGPACK) + body, 6)


def samples_of(block: Block, uuids: dict[int, str] | None = None) -> list[Sample]:
    """The chunk's samples again (the round-trip test, and a store conversion)."""
    if block.original:
        return list(block.original)
    schema, layout = block.schema, block.layout
    found = []
    for row in block.values:
        at = 1 + len(schema.node)
        metrics = _named(schema.node, row[1:at])
        for name, length in zip(schema.vectors, layout.vectors, strict=True):
            if length != NO_VECTOR:
                metrics[name] = tuple(_typed(name, v) for v in row[at : at + length])
                at += length
        gpus = []
        for index in layout.gpus:
            values = row[at : at + len(schema.gpu)]
            at += len(schema.gpu)
            gpus.append(
                GpuSample(
                    index=index,
                    uuid=(uuids or {}).get(index, ""),
                    metrics=_named(schema.gpu, values),
                )
            )
        found.append(Sample(ts=float(row[0]), metrics=metrics, gpus=tuple(gpus)))
    return found


def _named(names: Sequence[str], values: np.ndarray) -> dict[str, object]:
    return {n: _typed(n, v) for n, v in zip(names, values, strict=True) if not np.isnan(v)}


def _typed(name: str, value: float) -> float | int:
    """A metric unknown to this version (from a newer schema) stays a float."""
    metric = BY_NAME.get(name)
    return int(value) if metric is not None and metric.integer else float(value)
