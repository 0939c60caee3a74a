"""The only module that builds or parses topic strings: `dormouse/v1/nodes/{node}/{kind}`."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from shared.errors import TopicError
from shared.fields import NAME_RE

PREFIX = "dormouse/v1/nodes"


class Kind(StrEnum):
    HELLO = "hello"
    TELEMETRY = "telemetry"
    STATUS = "status"
    EVENTS = "events"
    CMD = "cmd"


@dataclass(frozen=True, slots=True)
class Topic:
    node: str
    kind: Kind

    def __post_init__(self) -> None:
        validate_node(self.node)

    def __str__(self) -> str:
        return f"{PREFIX}/{self.node}/{self.kind.value}"


def validate_node(node: str) -> str:
    """Node names appear in topics, file names and SQL: `[A-Za-z0-9._-]{1,64}` only."""
    if not isinstance(node, str) or not NAME_RE.fullmatch(node) or node in {".", ".."}:
        raise TopicError(f"bad node name {node!r}: use 1-64 of A-Z a-z 0-9 . _ -")
    return node


def topic(node: str, kind: Kind | str) -> str:
    try:
        return str(Topic(node, Kind(kind)))
    except ValueError as exc:
        raise TopicError(f"unknown topic kind {kind!r}") from exc


def parse_topic(text: str) -> Topic:
    """`dormouse/v1/nodes/n1/telemetry` -> Topic("n1", Kind.TELEMETRY); TopicError otherwise."""
    head, _, rest = text.rpartition("/nodes/")
    if f"{head}/nodes" != PREFIX:
        raise TopicError(f"not a dormouse v1 topic: {text[:200]!r}")
    node, sep, kind = rest.partition("/")
    if not sep or kind not in Kind.__members__.values():
        raise TopicError(f"not a dormouse v1 topic: {text[:200]!r}")
    return Topic(validate_node(node), Kind(kind))


def subscription(kind: Kind, *, node: str = "+", group: str | None = None) -> str:
    """A filter for one kind, all nodes by default; a `group` spreads it over the ingest
    workers that join it (an MQTT 5 shared subscription: each message goes to one)."""
    if node != "+":
        validate_node(node)
    text = f"{PREFIX}/{node}/{kind.value}"
    return f"$share/{validate_node(group)}/{text}" if group is not None else text
