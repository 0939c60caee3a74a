"""The raw tier's encoding round-trips exactly (hypothesis): every value bit for bit, an
absent value stays absent, whatever the GPUs and vectors."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from coordinator.core import chunks
from shared.messages import GpuSample, Sample
from shared.metrics import Metric, Scope, metrics_in


def value(metric: Metric) -> st.SearchStrategy:
    if metric.integer:
        return st.integers(int(metric.lo), int(min(metric.hi, 2**62)))
    return st.floats(metric.lo, metric.hi, allow_nan=False, allow_infinity=False)


def metrics(scope: Scope) -> st.SearchStrategy:
    return st.fixed_dictionaries(
        {},
        optional={
            m.name: st.tuples(*[value(m)] * 3) if m.vector else value(m) for m in metrics_in(scope)
        },
    )


@st.composite
def runs(draw) -> list[Sample]:
    gpus = draw(st.lists(st.integers(0, 63), max_size=8, unique=True))
    ts = draw(st.floats(0, 1e10, allow_nan=False))
    return [
        Sample(
            ts=ts + i,
            metrics=draw(metrics(Scope.NODE)),
            gpus=tuple(
                GpuSample(index=g, uuid=f"GPU-{g}", metrics=draw(metrics(Scope.GPU))) for g in gpus
            ),
        )
        for i in range(draw(st.integers(1, 6)))
    ]


@settings(max_examples=150, deadline=None)
@given(st.lists(runs(), min_size=1, max_size=4))
def test_chunks_round_trip_exactly(batches):
    pieces = [b[a:z] for b in batches for a, z in chunks.runs(b)]
    blobs = chunks.encode(pieces)
    for piece, blob in zip(pieces, blobs, strict=True):
        block = chunks.decode(blob, 0, chunks.CURRENT)
        uuids = {g.index: g.uuid for g in piece[0].gpus}
        assert chunks.samples_of(block, uuids) == piece
