"""Typed refusals. Each carries a short `reason` code that counters and logs group by."""

from __future__ import annotations


class DormouseError(Exception):
    """Base of every error this project raises on purpose."""

    reason = "error"


class DecodeError(DormouseError):
    """Untrusted bytes were refused; the message says what was wrong."""

    reason = "decode"


class PayloadTooLarge(DecodeError):
    reason = "too_large"


class FrameError(DecodeError):
    """Not a complete, valid LZ4 frame (corrupt, truncated or with trailing bytes)."""

    reason = "lz4"


class MsgpackError(DecodeError):
    """Not valid msgpack, or past the unpacker's limits (length, nesting, ext types)."""

    reason = "msgpack"


class UnsupportedVersion(DecodeError):
    reason = "version"


class SchemaError(DecodeError):
    """A field is missing, unknown, of the wrong type or out of range."""

    reason = "schema"


class NodeMismatch(DecodeError):
    """The node named in the payload is not the node named in the topic."""

    reason = "node_mismatch"


class TopicError(DormouseError):
    reason = "topic"


class ConfigError(DormouseError):
    """A configuration file, variable or flag is unusable; the message names the key."""

    reason = "config"


class CommandRejected(DormouseError):
    """A command failed verification on the agent and must not be executed."""

    reason = "rejected"


class BadSignature(CommandRejected):
    reason = "signature"


class NoCommandKey(CommandRejected):
    """The agent has no command key installed: it can verify no command."""

    reason = "no_key"


KEY_REASONS = frozenset({NoCommandKey.reason, BadSignature.reason})  # cannot verify commands


class CommandExpired(CommandRejected):
    reason = "expired"


class CommandReplayed(CommandRejected):
    reason = "replayed"


class StaleEpoch(CommandRejected):
    """Signed by a coordinator that no longer leads (a later leader's epoch was seen)."""

    reason = "stale_epoch"


class ForeignCommand(CommandRejected):
    reason = "foreign"


class NotFound(DormouseError):
    """The node, job or token asked for is not known (the HTTP API answers 404)."""

    reason = "not_found"


class Conflict(DormouseError):
    """The request is sound but the subject's state forbids it now (the HTTP API: 409)."""

    reason = "conflict"
