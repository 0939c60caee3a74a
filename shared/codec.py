"""Encode and decode v1 payloads: an LZ4 frame around a msgpack map with `v: 1`.

Decoding treats the bytes as hostile: every stage is bounded before it runs (compressed
size, decompressed size, msgpack lengths and depth) and the result must pass the message's
schema. Each refusal is a typed `DecodeError` whose `reason` is a short counter label.
"""

from __future__ import annotations

from typing import Any

import lz4.frame
import msgpack

from shared.errors import (
    DecodeError,
    FrameError,
    MsgpackError,
    NodeMismatch,
    PayloadTooLarge,
    SchemaError,
    UnsupportedVersion,
)
from shared.messages import Command, Event, Hello, Status, TelemetryBatch, WireMessage
from shared.topics import Kind

VERSION = 1
MAX_COMPRESSED = 256 * 1024
MAX_DECOMPRESSED = 1024 * 1024

KIND_OF: dict[type[WireMessage], Kind] = {
    Hello: Kind.HELLO,
    TelemetryBatch: Kind.TELEMETRY,
    Status: Kind.STATUS,
    Event: Kind.EVENTS,
    Command: Kind.CMD,
}
CLASS_OF: dict[Kind, type[WireMessage]] = {kind: cls for cls, kind in KIND_OF.items()}

_UNPACK_LIMITS: dict[str, Any] = {
    "max_str_len": 64 * 1024,
    "max_bin_len": 1024,
    "max_array_len": 16 * 1024,
    "max_map_len": 1024,
    "max_ext_len": 0,
}


def encode(message: WireMessage) -> bytes:
    """The payload for `message`; PayloadTooLarge if a peer would refuse it (split the batch)."""
    return frame(pack_map(message))


def frame(packed: bytes) -> bytes:
    """A message's msgpack bytes as a payload: compressed, within both caps."""
    if len(packed) > MAX_DECOMPRESSED:
        raise PayloadTooLarge(f"encoded message is {len(packed)} bytes, over {MAX_DECOMPRESSED}")
    compressed: bytes = lz4.frame.compress(packed, store_size=True)
    if len(compressed) > MAX_COMPRESSED:
        raise PayloadTooLarge(
            f"compressed message is {len(compressed)} bytes, over {MAX_COMPRESSED}"
        )
    return compressed


def pack_map(message: WireMessage) -> bytes:
    """The msgpack layer alone: the bytes the golden vectors pin down."""
    wire = {"v": VERSION, **message.to_wire()}
    return msgpack.packb(wire, use_bin_type=True)


def decode(payload: bytes, kind: Kind, topic_node: str) -> WireMessage:
    """The message in `payload`, received on the topic of `kind` for `topic_node`."""
    data = unpack_map(decompress_bounded(payload))
    version = data.pop("v", None)
    if type(version) is not int or version != VERSION:  # 1.0 and True equal 1 in Python
        raise UnsupportedVersion(f"v: {version!r} is not a supported version (supported: 1)")
    message = CLASS_OF[kind].from_wire(data)
    if message.node != topic_node:
        raise NodeMismatch(f"node: payload says {message.node!r}, topic says {topic_node!r}")
    return message


def decompress_bounded(payload: bytes) -> bytes:
    """Decompress one LZ4 frame, stopping as soon as the output passes the cap (no bombs)."""
    if not isinstance(payload, bytes | bytearray | memoryview):
        raise DecodeError(f"payload must be bytes, got {type(payload).__name__}")
    if len(payload) > MAX_COMPRESSED:
        raise PayloadTooLarge(f"payload is {len(payload)} bytes, over {MAX_COMPRESSED}")
    decompressor = lz4.frame.LZ4FrameDecompressor()
    try:
        out: bytes = decompressor.decompress(bytes(payload), max_length=MAX_DECOMPRESSED + 1)
    except RuntimeError as exc:
        raise FrameError(f"not a valid LZ4 frame: {exc}") from None
    if len(out) > MAX_DECOMPRESSED:
        raise PayloadTooLarge(f"decompresses to more than {MAX_DECOMPRESSED} bytes")
    if not decompressor.eof:
        raise FrameError("truncated LZ4 frame")
    if decompressor.unused_data:
        raise FrameError(f"{len(decompressor.unused_data)} bytes after the LZ4 frame")
    return out


def unpack_map(data: bytes) -> dict[str, Any]:
    try:
        value = msgpack.unpackb(data, raw=False, strict_map_key=True, **_UNPACK_LIMITS)
    except (
        ValueError,
        TypeError,
        msgpack.exceptions.ExtraData,
        msgpack.exceptions.FormatError,
        msgpack.exceptions.StackError,
    ) as exc:
        raise MsgpackError(f"not valid msgpack: {exc}") from None
    if not isinstance(value, dict):
        raise SchemaError(f"payload: expected a map, got {type(value).__name__}")
    return value
