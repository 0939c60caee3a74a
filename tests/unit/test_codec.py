"""Round trips for every message kind, and each way an untrusted payload is refused."""

from __future__ import annotations

import math

import lz4.frame
import msgpack
import pytest

from shared.codec import (
    KIND_OF,
    MAX_COMPRESSED,
    MAX_DECOMPRESSED,
    decode,
    decompress_bounded,
    encode,
    pack_map,
)
from shared.errors import (
    FrameError,
    MsgpackError,
    NodeMismatch,
    PayloadTooLarge,
    SchemaError,
    UnsupportedVersion,
)
from shared.messages import Sample, TelemetryBatch
from shared.topics import Kind
from tests import factories


def frame(value: object) -> bytes:
    return lz4.frame.compress(msgpack.packb(value, use_bin_type=True))


def wire_of(message: object) -> dict:
    return msgpack.unpackb(pack_map(message))  # type: ignore[arg-type]


@pytest.mark.parametrize("message", factories.every_message(), ids=lambda m: type(m).__name__)
def test_every_kind_round_trips(message):
    kind = KIND_OF[type(message)]
    decoded = decode(encode(message), kind, message.node)
    assert decoded == message
    assert type(decoded) is type(message)


def test_telemetry_seq_is_implied_by_position():
    batch = factories.telemetry(seq_first=7, count=3)
    assert batch.seq_last == 9
    assert "seq" not in wire_of(batch)["samples"][0]


def test_null_metric_means_no_data_and_survives():
    decoded = decode(encode(factories.telemetry()), Kind.TELEMETRY, "gpu-01")
    assert decoded.samples[0].metrics["power_w"] is None
    assert decoded.samples[0].gpus[0].metrics["gpu_temp_c"] is None


def test_payload_over_compressed_cap_is_refused_before_decompressing():
    with pytest.raises(PayloadTooLarge, match="over 262144"):
        decompress_bounded(b"\0" * (MAX_COMPRESSED + 1))


def test_lz4_bomb_stops_at_the_cap():
    bomb = lz4.frame.compress(b"\0" * (16 * MAX_DECOMPRESSED))
    assert len(bomb) < MAX_COMPRESSED  # tiny input...
    with pytest.raises(PayloadTooLarge, match="decompresses to more than"):
        decompress_bounded(bomb)  # ...refused without inflating 16 MiB


@pytest.mark.parametrize("cut", [1, 4, 10, -1, -5])
def test_truncated_frame_is_refused(cut):
    payload = encode(factories.telemetry())
    with pytest.raises(FrameError):
        decompress_bounded(payload[:cut])


def test_trailing_bytes_after_the_frame_are_refused():
    with pytest.raises(FrameError, match="after the LZ4 frame"):
        decompress_bounded(encode(factories.status()) + b"junk")


def test_not_lz4_is_refused():
    with pytest.raises(FrameError):
        decode(b"hello world", Kind.STATUS, "n1")


def test_not_msgpack_is_refused():
    with pytest.raises(MsgpackError):
        decode(lz4.frame.compress(b"\xc1"), Kind.STATUS, "n1")


def test_trailing_msgpack_data_is_refused():
    body = msgpack.packb({"v": 1}) + msgpack.packb(1)
    with pytest.raises(MsgpackError):
        decode(lz4.frame.compress(body), Kind.STATUS, "n1")


def test_deep_nesting_is_refused():
    # {"v": 1, "node": "n1", "deep": [[[...5000 levels...]]]}, built by hand: packb recurses.
    body = b"\x83\xa1v\x01\xa4node\xa2n1\xa4deep" + b"\x91" * 5000 + b"\x01"
    with pytest.raises(MsgpackError):
        decode(lz4.frame.compress(body), Kind.STATUS, "n1")


def test_nesting_where_a_scalar_belongs_is_refused():
    wire = wire_of(factories.status("n1"))
    wire["state"] = [[["online"]]]
    with pytest.raises(SchemaError, match="state: expected a string"):
        decode(frame(wire), Kind.STATUS, "n1")


def test_huge_array_header_is_refused_without_allocating():
    # An array32 header claiming 2**31 items with no items after it.
    body = b"\x82\xa1v\x01\xa7samples\xdd\x80\x00\x00\x00"
    with pytest.raises(MsgpackError):
        decode(lz4.frame.compress(body), Kind.TELEMETRY, "n1")


def test_array_over_the_item_limit_is_refused():
    with pytest.raises(MsgpackError):
        decode(frame({"v": 1, "node": "n1", "xs": [0] * 20_000}), Kind.STATUS, "n1")


def test_ext_types_are_refused():
    body = msgpack.packb({"v": 1, "node": msgpack.ExtType(5, b"x")})
    with pytest.raises(MsgpackError):
        decode(lz4.frame.compress(body), Kind.STATUS, "n1")


def test_top_level_must_be_a_map():
    with pytest.raises(SchemaError, match="expected a map"):
        decode(frame([1, 2]), Kind.STATUS, "n1")


@pytest.mark.parametrize("version", [None, 0, 2, "1", 1.0, True])
def test_unknown_version_is_refused(version):
    wire = wire_of(factories.status("n1"))
    if version is None:
        del wire["v"]
    else:
        wire["v"] = version
    with pytest.raises(UnsupportedVersion):
        decode(frame(wire), Kind.STATUS, "n1")


def test_node_in_payload_must_match_topic():
    with pytest.raises(NodeMismatch, match="payload says 'n1', topic says 'n2'"):
        decode(encode(factories.status("n1")), Kind.STATUS, "n2")


def test_payload_of_another_kind_is_refused():
    with pytest.raises(SchemaError):
        decode(encode(factories.status("n1")), Kind.TELEMETRY, "n1")


def test_unknown_field_is_refused():
    wire = wire_of(factories.status("n1"))
    wire["extra"] = 1
    with pytest.raises(SchemaError, match="unknown field"):
        decode(frame(wire), Kind.STATUS, "n1")


def mutated_telemetry(path: list, value: object) -> bytes:
    wire = wire_of(factories.telemetry("n1"))
    target = wire
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return frame(wire)


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (["samples", 0, "metrics", "cpu_util_pct"], math.nan, "not a finite number"),
        (["samples", 0, "metrics", "cpu_util_pct"], math.inf, "not a finite number"),
        (["samples", 0, "metrics", "cpu_util_pct"], 101.0, "outside"),
        (["samples", 0, "metrics", "cpu_util_pct"], "12", "expected a number"),
        (["samples", 0, "metrics", "cpu_util_pct"], True, "expected a number"),
        (["samples", 0, "metrics", "mem_used_bytes"], 1.5, "expected an integer"),
        (["samples", 0, "metrics", "no_such_metric"], 1.0, "not a node metric"),
        (["samples", 0, "metrics", "gpu_util_pct"], 1.0, "not a node metric"),
        (["samples", 0, "metrics", "cpu_core_util_pct"], [1.0, -2.0], r"\[1\]: -2.0 is outside"),
        (["samples", 0, "gpus", 0, "metrics", "gpu_temp_c"], -1e9, "outside"),
        (["samples", 0, "ts"], -1.0, "outside"),
        (["samples"], [], "at least one sample"),
        (["seq_first"], -1, "outside"),
        (["seq_first"], 2**63 - 1, "past the largest seq"),
        (["node"], "bad/node", "does not match"),
    ],
)
def test_bad_telemetry_fields_are_refused_with_their_path(path, value, message):
    with pytest.raises(SchemaError, match=message):
        decode(mutated_telemetry(path, value), Kind.TELEMETRY, "n1")


def test_schema_error_names_the_nested_path():
    payload = mutated_telemetry(["samples", 1, "gpus", 0, "metrics", "gpu_util_pct"], "x")
    with pytest.raises(SchemaError, match=r"^samples\[1\]\.gpus\[0\]\.metrics\.gpu_util_pct:"):
        decode(payload, Kind.TELEMETRY, "n1")


def test_encode_refuses_what_a_peer_would_refuse():
    samples = tuple(factories.sample(float(i + 1)) for i in range(10_000))
    with pytest.raises(PayloadTooLarge):
        encode(TelemetryBatch(node="n1", seq_first=0, samples=samples))


def test_messages_are_validated_on_construction():
    with pytest.raises(SchemaError, match="cpu_util_pct"):
        Sample(ts=1.0, metrics={"cpu_util_pct": math.nan})


def test_command_must_expire_after_it_is_issued():
    with pytest.raises(SchemaError, match="expires_at"):
        factories.command().__class__(
            id="c", node="n1", issued_at=10.0, expires_at=10.0, body=factories.BODIES[0]
        )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"op": "format-disk"}, "is not one of"),
        ({"op": "run", "job_id": "j", "argv": []}, "needs a command"),
        ({"op": "resend", "from_seq": 5, "to_seq": 4}, "smaller than from_seq"),
        ({"job_id": "j"}, "op"),
    ],
)
def test_bad_command_bodies_are_refused(body, message):
    wire = wire_of(factories.command("n1"))
    wire["body"] = body
    with pytest.raises(SchemaError, match=message):
        decode(frame(wire), Kind.CMD, "n1")


def test_event_rules():
    wire = wire_of(factories.event("n1"))
    del wire["exit_code"]
    with pytest.raises(SchemaError, match="exit_code: missing"):
        decode(frame(wire), Kind.EVENTS, "n1")


def test_decompressed_limit_matches_the_design():
    assert MAX_COMPRESSED == 256 * 1024
    assert MAX_DECOMPRESSED == 1024 * 1024
