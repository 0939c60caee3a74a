"""Rollup maths over decoded chunks, pure and vectorised: a node's samples in a bucket to
each metric's (count, value, min, max), and the node's energy over the bucket.

`value` is the mean for a gauge and the increase for a counter (a drop is a reset: the value
after it is the increase since, as `core.rollups.counter` says). A GPU metric has one entry
per GPU. Buckets merge into coarser ones (minutes into hours, into a query's steps) exactly:
counts and increases add, means weigh by count, extremes of extremes.

Energy is `power.energy.integrate` bucket by bucket: each step between consecutive samples
belongs to the bucket of its later sample and counts only if no longer than `max_gap_s`; the
node's energy counters (RAPL package + DRAM + every GPU's, as the report sums them) are
preferred, power x time where a sample has none.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from coordinator.core.chunks import CURRENT, Block, column_index
from shared.metrics import BY_NAME, Kind

COUNT, VALUE, MIN, MAX = range(4)
NODE_NAMES = CURRENT.node
GPU_NAMES = CURRENT.gpu
_NODE_COUNTER = np.array([BY_NAME[n].kind is Kind.COUNTER for n in NODE_NAMES])
_GPU_COUNTER = np.array([BY_NAME[n].kind is Kind.COUNTER for n in GPU_NAMES])
ENERGY, AWAKE, METERED = range(3)  # usage: joules, seconds awake, steps with a measurement


@dataclass(frozen=True, slots=True)
class Rows:
    """A node's samples in seq order, on the current schema: NaN where absent."""

    ts: np.ndarray  # (m,)
    node: np.ndarray  # (m, node metrics)
    gpu: np.ndarray  # (m, GPUs, GPU metrics)
    gpus: tuple[int, ...]
    counter_j: np.ndarray  # (m,) the node's energy counters summed; NaN if not all there

    @property
    def power_w(self) -> np.ndarray:
        return self.node[:, NODE_NAMES.index("power_w")]


@dataclass(frozen=True, slots=True)
class Bucket:
    """One node's aggregates over one bucket: (entries, 4) per metric, and usage (3,)."""

    gpus: tuple[int, ...]
    metrics: dict[str, np.ndarray]
    usage: np.ndarray


def gather(blocks: Sequence[Block]) -> Rows:
    """Decoded chunks of one node, in seq order, as one set of rows."""
    gpus = tuple(sorted({g for b in blocks for g in b.layout.gpus}))
    parts = [_on_current(b, gpus) for b in blocks]
    if not parts:
        empty = np.empty((0,))
        return Rows(
            empty, np.empty((0, len(NODE_NAMES))), np.empty((0, 0, len(GPU_NAMES))), (), empty
        )
    return Rows(
        np.concatenate([p[0] for p in parts]),
        np.concatenate([p[1] for p in parts]),
        np.concatenate([p[2] for p in parts]),
        gpus,
        np.concatenate([p[3] for p in parts]),
    )


def _on_current(
    block: Block, gpus: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    values, layout, n = block.values, block.layout, len(block.values)
    if block.schema == CURRENT:
        node = values[:, 1 : 1 + len(NODE_NAMES)]
        base = layout.width(CURRENT) - len(layout.gpus) * len(GPU_NAMES)
        own = values[:, base:].reshape(n, len(layout.gpus), len(GPU_NAMES))
    else:  # an older schema: columns by name, NaN for metrics it did not have
        node = np.stack([_column(block, m, -1, n) for m in NODE_NAMES], axis=1)
        own = np.stack(
            [np.stack([_column(block, m, g, n) for m in GPU_NAMES], axis=1) for g in layout.gpus],
            axis=1,
        ).reshape(n, len(layout.gpus), len(GPU_NAMES))
    gpu = np.full((n, len(gpus), len(GPU_NAMES)), np.nan)
    for i, index in enumerate(layout.gpus):
        gpu[:, gpus.index(index)] = own[:, i]
    return values[:, 0], node, gpu, _energy_counter(node, own)


def _column(block: Block, metric: str, gpu: int, n: int) -> np.ndarray:
    at = column_index(block.schema, block.layout, metric, gpu)
    return np.full(n, np.nan) if at is None else block.values[:, at]


def _energy_counter(node: np.ndarray, gpu: np.ndarray) -> np.ndarray:
    """RAPL package + DRAM + every GPU's energy per sample; NaN unless the package counter
    is there and every GPU of the sample has its counter (`store.usage` of old)."""
    package = node[:, NODE_NAMES.index("rapl_package_energy_j")]
    dram = np.nan_to_num(node[:, NODE_NAMES.index("rapl_dram_energy_j")])
    energy = gpu[:, :, GPU_NAMES.index("gpu_energy_j")]
    return package + dram + energy.sum(axis=1)  # NaN if any GPU lacks it


def increase(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    return np.where(after >= before, after - before, after)


def _ffill_previous(values: np.ndarray) -> np.ndarray:
    """Per column, the last non-NaN value before each row (NaN if none)."""
    rows = np.arange(len(values))[:, None]
    seen = np.where(np.isnan(values), -1, rows)
    last = np.maximum.accumulate(seen, axis=0)
    previous = np.vstack([np.full((1, values.shape[1]), -1), last[:-1]])
    filled = np.take_along_axis(values, np.maximum(previous, 0), axis=0)
    return np.where(previous >= 0, filled, np.nan)


def _aggregate(values: np.ndarray, inside: np.ndarray, counter: np.ndarray) -> np.ndarray:
    """(m, w) values, the rows in the bucket, which columns are counters: (w, 4)."""
    out = np.full((values.shape[1], 4), np.nan)
    within = values[inside]
    present = ~np.isnan(within)
    out[:, COUNT] = present.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        out[:, VALUE] = np.where(present, within, 0.0).sum(axis=0) / out[:, COUNT]
    out[:, MIN] = np.where(present, within, np.inf).min(axis=0, initial=np.inf)
    out[:, MAX] = np.where(present, within, -np.inf).max(axis=0, initial=-np.inf)
    if counter.any():
        columns = values[:, counter]
        previous = _ffill_previous(columns)
        steps = increase(previous, columns)
        counted = inside[:, None] & ~np.isnan(columns) & ~np.isnan(previous)
        out[counter, VALUE] = np.where(counted, steps, 0.0).sum(axis=0)
    empty = out[:, COUNT] == 0
    out[empty, VALUE:] = np.nan
    return out


def bucket(rows: Rows, lo: float, hi: float, max_gap_s: float) -> Bucket | None:
    """Aggregates of the rows stamped in [lo, hi); rows before `lo` (the same node's,
    in seq order) only start counters and energy. None if no row is in the bucket."""
    inside = (rows.ts >= lo) & (rows.ts < hi)
    if not inside.any():
        return None
    m, g = len(rows.ts), len(rows.gpus)
    flat = np.concatenate([rows.node, rows.gpu.reshape(m, g * len(GPU_NAMES))], axis=1)
    counter = np.concatenate([_NODE_COUNTER, np.tile(_GPU_COUNTER, g)])
    out = _aggregate(flat, inside, counter)
    metrics = {name: out[i : i + 1] for i, name in enumerate(NODE_NAMES)}
    base = len(NODE_NAMES)
    for k, name in enumerate(GPU_NAMES):
        metrics[name] = out[base + k :: len(GPU_NAMES)][:g]
    return Bucket(rows.gpus, metrics, usage(rows, inside, max_gap_s))


def usage(rows: Rows, inside: np.ndarray, max_gap_s: float) -> np.ndarray:
    """(joules, seconds awake, steps measured) of the steps ending in the bucket."""
    out = np.zeros(3)
    if len(rows.ts) < 2:
        return out
    dt = np.diff(rows.ts)
    counted = inside[1:] & (dt > 0) & (dt <= max_gap_s)
    counters = rows.counter_j
    both = ~np.isnan(counters[:-1]) & ~np.isnan(counters[1:])
    power = rows.power_w[1:]
    steps = np.where(
        both, increase(counters[:-1], counters[1:]), np.where(np.isnan(power), 0.0, power * dt)
    )
    measured = counted & (both | ~np.isnan(power))
    out[ENERGY] = steps[measured].sum()
    out[AWAKE] = dt[counted].sum()
    out[METERED] = measured.sum()
    return out


def merge(parts: Sequence[Bucket]) -> Bucket:
    """Buckets of one node into one: counts and increases add, means weigh by count."""
    gpus = tuple(sorted({g for p in parts for g in p.gpus}))
    metrics = {}
    for name in (*NODE_NAMES, *GPU_NAMES):
        counter = BY_NAME[name].kind is Kind.COUNTER
        entries = [-1] if name in NODE_NAMES else list(gpus)
        stacked = np.stack([_aligned(p, name, entries) for p in parts])
        metrics[name] = merge_arrays(stacked, counter)
    return Bucket(gpus, metrics, np.sum([p.usage for p in parts], axis=0))


def _aligned(part: Bucket, name: str, entries: list[int]) -> np.ndarray:
    own = part.metrics.get(name)
    out = np.full((len(entries), 4), np.nan)
    out[:, COUNT] = 0
    if own is None:
        return out
    if entries == [-1]:
        return own[:1].copy()
    for i, gpu in enumerate(part.gpus):
        if i < len(own):
            out[entries.index(gpu)] = own[i]
    return out


def merge_arrays(stacked: np.ndarray, counter: bool) -> np.ndarray:
    """(parts, ..., 4) aggregates into (..., 4)."""
    counts = np.nan_to_num(stacked[..., COUNT])
    values = stacked[..., VALUE]
    out = np.full(stacked.shape[1:], np.nan)
    out[..., COUNT] = counts.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        if counter:
            out[..., VALUE] = np.where(counts > 0, np.nan_to_num(values), 0.0).sum(axis=0)
        else:
            weighted = np.where(counts > 0, np.nan_to_num(values) * counts, 0.0).sum(axis=0)
            out[..., VALUE] = weighted / out[..., COUNT]
    out[..., MIN] = np.fmin.reduce(np.where(counts > 0, stacked[..., MIN], np.nan), axis=0)
    out[..., MAX] = np.fmax.reduce(np.where(counts > 0, stacked[..., MAX], np.nan), axis=0)
    out[out[..., COUNT] == 0, VALUE:] = np.nan
    return out


def pack(values: np.ndarray) -> bytes:
    """A metric's (entries, 4) aggregates as stored: float32 (7 significant digits; the
    database compresses the mostly-constant health columns)."""
    return values.astype(np.float32).tobytes()


def unpack(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype=np.float32).reshape(-1, 4).astype(np.float64)


def pack_usage(values: np.ndarray) -> bytes:
    return values.astype(np.float64).tobytes()  # joules stay exact to the microjoule


def unpack_usage(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype=np.float64)
