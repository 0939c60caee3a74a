"""Hypothesis fuzzing of `decode`: whatever the bytes, the result is a valid message or a
typed DecodeError; never another exception, a hang or a crash."""

from __future__ import annotations

import lz4.frame
import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.codec import KIND_OF, decode, encode, pack_map
from shared.errors import DecodeError, SchemaError
from shared.messages import Event, GpuSample, MetricValues, Sample, Status, TelemetryBatch
from shared.metrics import Scope, metrics_in
from shared.topics import Kind
from shared.wire import Message
from tests import factories

KINDS = st.sampled_from(list(Kind))
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
    | st.binary(max_size=20)
)
structures = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5)
    ),
    max_leaves=30,
)


def decodes_or_refuses(payload: bytes, kind: Kind, node: str = "gpu-01") -> None:
    try:
        message = decode(payload, kind, node)
    except DecodeError as exc:
        reason = str(exc)
    else:
        assert message.node == node
        assert decode(encode(message), kind, node) == message  # what we accept, we can resend
        return
    assert reason, "a refusal must say what was wrong"


@FUZZ
@given(st.binary(max_size=4096), KINDS)
def test_random_bytes(payload, kind):
    decodes_or_refuses(payload, kind)


@FUZZ
@given(structures, KINDS)
def test_random_msgpack_in_a_valid_frame(value, kind):
    payload = lz4.frame.compress(msgpack.packb(value, use_bin_type=True))
    decodes_or_refuses(payload, kind)


@FUZZ
@given(st.sampled_from(factories.every_message()), st.data())
def test_valid_message_with_one_field_replaced(message, data):
    wire = msgpack.unpackb(pack_map(message))
    key = data.draw(st.sampled_from(sorted(wire)))
    wire[key] = data.draw(structures)
    payload = lz4.frame.compress(msgpack.packb(wire, use_bin_type=True))
    decodes_or_refuses(payload, KIND_OF[type(message)])


@FUZZ
@given(st.sampled_from(factories.every_message()), st.data())
def test_mutated_msgpack_bytes(message, data):
    body = bytearray(pack_map(message))
    for _ in range(data.draw(st.integers(1, 8))):
        body[data.draw(st.integers(0, len(body) - 1))] = data.draw(st.integers(0, 255))
    decodes_or_refuses(lz4.frame.compress(bytes(body)), KIND_OF[type(message)])


@FUZZ
@given(st.sampled_from(factories.every_message()), st.data())
def test_truncated_or_corrupted_frames(message, data):
    payload = bytearray(encode(message))
    if data.draw(st.booleans()):
        payload = payload[: data.draw(st.integers(0, len(payload) - 1))]
    else:
        payload[data.draw(st.integers(0, len(payload) - 1))] ^= data.draw(st.integers(1, 255))
    decodes_or_refuses(bytes(payload), KIND_OF[type(message)])


finite = st.floats(min_value=0, max_value=100, allow_nan=False)
metrics = st.fixed_dictionaries(
    {},
    optional={
        "cpu_util_pct": finite | st.none(),
        "mem_used_bytes": st.integers(0, 2**60),
        "cpu_core_util_pct": st.lists(finite, max_size=8).map(tuple),
        "load_avg_1m": st.floats(0, 1e6, allow_nan=False),
    },
)
gpu_metrics = st.fixed_dictionaries(
    {},
    optional={
        "gpu_util_pct": finite | st.none(),
        "gpu_xid_last": st.integers(0, 200) | st.none(),
        "gpu_ecc_volatile_uncorrected": st.integers(0, 2**40),
        "gpu_throttle_thermal": st.sampled_from([0, 1, None]),
        "gpu_clock_sm_mhz": st.floats(0, 5000, allow_nan=False),
    },
)
gpus = st.lists(
    st.builds(
        GpuSample,
        index=st.integers(0, 63),
        uuid=st.text(max_size=40),
        metrics=gpu_metrics,
        health=st.sampled_from(["ok", "degraded", "failed"]),
        reason=st.text(max_size=60),
    ),
    max_size=4,
    unique_by=lambda g: g.index,
).map(tuple)
samples = st.builds(Sample, ts=st.floats(0, 1e11, allow_nan=False), metrics=metrics, gpus=gpus)


@FUZZ
@given(st.lists(samples, min_size=1, max_size=20), st.integers(0, 2**62))
def test_generated_telemetry_round_trips(sample_list, seq_first):
    batch = TelemetryBatch(node="gpu-01", seq_first=seq_first, samples=tuple(sample_list))
    assert decode(encode(batch), Kind.TELEMETRY, "gpu-01") == batch


@FUZZ
@given(
    st.sampled_from(["online", "sleeping", "offline"]),
    st.floats(0, 1e11, allow_nan=False),
    st.text(max_size=1024),
)
def test_generated_status_and_event_round_trip(state, ts, detail):
    status = Status(node="n", ts=ts, state=state)
    event = Event(node="n", ts=ts, kind="sleep_ack", detail=detail)
    assert decode(encode(status), Kind.STATUS, "n") == status
    assert decode(encode(event), Kind.EVENTS, "n") == event


NODE_METRICS = sorted(m.name for m in metrics_in(Scope.NODE))
metric_maps = st.dictionaries(
    st.sampled_from(NODE_METRICS) | st.text(max_size=8),
    st.none()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.lists(st.floats(-10, 200) | st.integers(-5, 5) | st.floats(), max_size=4)
    | st.lists(st.floats(0, 100), max_size=4)
    | st.text(max_size=4),
    max_size=8,
)


@FUZZ
@given(metric_maps)
def test_the_fast_metric_check_agrees_with_the_strict_one(value):
    """`MetricValues._plain` takes only what the strict checks would take, unchanged."""
    check = MetricValues(Scope.NODE)
    fast = check._plain(value)
    try:
        strict = {n: check._value_of(n, v, n) for n, v in value.items()}
    except SchemaError:
        assert fast is None
        return
    assert fast is None or fast == strict


sample_maps = st.dictionaries(
    st.sampled_from(["ts", "metrics", "gpus", "extra"]),
    st.floats(allow_nan=True, allow_infinity=True)
    | st.integers(-5, 2**40)
    | st.none()
    | metric_maps
    | st.lists(st.integers(0, 3), max_size=2)
    | st.floats(0, 1e11),
    max_size=4,
)


@FUZZ
@given(
    sample_maps | st.builds(lambda m, ts: {"ts": ts, "metrics": m}, metric_maps, st.floats(0, 1e11))
)
def test_the_fast_sample_path_agrees_with_the_field_checks(data):
    """`Sample.from_wire` builds the common shape in one pass; the field checks (the
    generic `Message.from_wire`) must give the same sample, or refuse it alike."""
    checked = Message.from_wire.__func__
    try:
        strict = checked(Sample, data)
    except SchemaError:
        with pytest.raises(SchemaError):
            Sample.from_wire(data)
        return
    assert Sample.from_wire(data) == strict
