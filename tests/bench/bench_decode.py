"""Decoding a telemetry batch: the full checked decode against raw LZ4 + msgpack (issue 13).

    .venv/bin/python tests/bench/bench_decode.py

Peer in the same run: `msgpack.unpackb(lz4.frame.decompress(payload))`, no checks at all;
the ratio is what validation into frozen messages costs on top of reading the bytes.
"""

from __future__ import annotations

import os
import statistics
import time

import lz4.frame
import msgpack

from shared.codec import decode, encode
from shared.messages import TelemetryBatch
from shared.topics import Kind
from tests.bench.bench_ingest import realistic_sample

ROUNDS, CALLS = 7, 5000


def per_call_us(work) -> float:
    times = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        for _ in range(CALLS):
            work()
        times.append((time.perf_counter() - started) / CALLS * 1e6)
    return statistics.median(times)


def main() -> None:
    batch = TelemetryBatch(
        node="n1", seq_first=0, samples=tuple(realistic_sample(1.7e9 + i, i) for i in range(5))
    )
    payload = encode(batch)
    checked = per_call_us(lambda: decode(payload, Kind.TELEMETRY, "n1"))
    raw = per_call_us(lambda: msgpack.unpackb(lz4.frame.decompress(payload)))
    print(f"machine: {os.cpu_count()} cores; a batch of 5 realistic samples, {len(payload)} bytes")
    print(f"decode (checked)   {checked:7.1f} us per batch")
    print(f"lz4 + msgpack only {raw:7.1f} us per batch")
    print(f"ratio checked/raw: {checked / raw:.2f}x")


if __name__ == "__main__":
    main()
