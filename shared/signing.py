"""HMAC-SHA256 command signing, and the agent-side verifier (expiry, replay, foreign node).

The MAC covers canonical bytes built from the parsed command, never the bytes as received,
so two encodings of the same command cannot yield two valid signatures.
"""

from __future__ import annotations

import dataclasses
import hashlib
import heapq
import hmac
import secrets
from typing import Any, Protocol

import msgpack

from shared.clock import Clock
from shared.errors import (
    BadSignature,
    CommandExpired,
    CommandRejected,
    CommandReplayed,
    ConfigError,
    ForeignCommand,
    StaleEpoch,
)
from shared.messages import Command

MIN_KEY_BYTES = 16
DOMAIN = b"dormouse/v1/cmd"
KEY_ID_LABEL = b"dormouse/v1/key-id"


def generate_key() -> str:
    """A new random key (64 hex characters) for `command_key_file`."""
    return secrets.token_hex(32)


def parse_key(text: str) -> bytes:
    """The key as stored in a key file: at least 16 bytes once stripped of whitespace."""
    key = text.strip().encode()
    if len(key) < MIN_KEY_BYTES:
        raise ConfigError(f"command key: at least {MIN_KEY_BYTES} characters are required")
    return key


def key_id(key: bytes) -> str:
    """The command key's fingerprint (16 hex characters), which agents and the coordinator
    compare in the open (an agent's hello carries it): an HMAC of a fixed label, so it
    reveals nothing of the key, and guessing the key from it is as hard as without it."""
    return hmac.new(key, KEY_ID_LABEL, hashlib.sha256).hexdigest()[:16]


def canonical_bytes(command: Command) -> bytes:
    body = {"op": command.body.OP, **command.body.to_wire()}
    fields = [
        DOMAIN,
        command.id,
        command.node,
        command.issued_at,
        command.expires_at,
        _sorted(body),
    ]
    if command.epoch:  # signed with the rest, so a leader's epoch cannot be forged
        fields.append(command.epoch)
    return msgpack.packb(fields, use_bin_type=True)


def _sorted(value: Any) -> Any:
    if isinstance(value, dict):
        return [[k, _sorted(value[k])] for k in sorted(value)]
    if isinstance(value, list | tuple):
        return [_sorted(v) for v in value]
    return value


def sign(command: Command, key: bytes) -> Command:
    mac = hmac.new(key, canonical_bytes(command), hashlib.sha256).digest()
    return dataclasses.replace(command, sig=mac)


ORDER_SLACK_S = 1.0  # commands of one coordinator may arrive this far out of issue order


class Accepted(Protocol):
    """The commands an agent has accepted: ids until they expire, and the latest issue time
    ever accepted. The agent keeps them on disk, so a restart forgets neither."""

    def __contains__(self, command_id: object) -> bool: ...
    def __len__(self) -> int: ...
    def add(self, command: Command) -> None: ...
    def forget_expired(self, before: float) -> None: ...
    def latest_issued_at(self) -> float | None: ...
    def highest_epoch(self) -> int: ...


class MemoryAccepted:
    """`Accepted` in memory: for tests and tools; a restart forgets it."""

    def __init__(self) -> None:
        self._ids: set[str] = set()
        self._expiry: list[tuple[float, str]] = []
        self._latest: float | None = None
        self._epoch = 0

    def __contains__(self, command_id: object) -> bool:
        return command_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, command: Command) -> None:
        self._ids.add(command.id)
        heapq.heappush(self._expiry, (command.expires_at, command.id))
        self._latest = max(self._latest or command.issued_at, command.issued_at)
        self._epoch = max(self._epoch, command.epoch)

    def forget_expired(self, before: float) -> None:
        while self._expiry and self._expiry[0][0] < before:
            self._ids.discard(heapq.heappop(self._expiry)[1])

    def latest_issued_at(self) -> float | None:
        return self._latest

    def highest_epoch(self) -> int:
        return self._epoch


class Verifier:
    """Accepts each valid command for this node once, and none issued before the latest it
    accepted (less `ORDER_SLACK_S`): a captured command replayed after a restart is refused
    as long as `accepted` survives the restart. Commands live at most `max_ttl_s`, so the
    ids kept never exceed that window's worth."""

    def __init__(
        self,
        key: bytes,
        node: str,
        clock: Clock,
        *,
        max_skew_s: float = 30.0,
        max_ttl_s: float = 600.0,
        max_cached: int = 100_000,
        not_before: float | None = None,
        accepted: Accepted | None = None,
    ) -> None:
        self._key, self._node, self._clock = key, node, clock
        self.key_id = key_id(key)  # said in the agent's hello
        self._max_skew_s, self._max_ttl_s, self._max_cached = max_skew_s, max_ttl_s, max_cached
        self._not_before = not_before
        self._accepted = MemoryAccepted() if accepted is None else accepted

    def verify(self, command: Command) -> Command:
        """The command if it may run; a CommandRejected subclass saying why otherwise."""
        if command.node != self._node:
            raise ForeignCommand(
                f"command {command.id} is for {command.node!r}, not {self._node!r}"
            )
        expected = hmac.new(self._key, canonical_bytes(command), hashlib.sha256).digest()
        if not hmac.compare_digest(expected, command.sig):
            raise BadSignature(f"command {command.id}: signature does not match")
        self._check_time(command)
        self._remember(command)
        return command

    def _check_time(self, command: Command) -> None:
        now = self._clock.now()
        if now > command.expires_at + self._max_skew_s:
            raise CommandExpired(f"command {command.id} expired at {command.expires_at:.3f}")
        if command.issued_at > now + self._max_skew_s:
            raise CommandExpired(f"command {command.id} is issued in the future (clock skew?)")
        if command.expires_at - command.issued_at > self._max_ttl_s:
            raise CommandExpired(f"command {command.id} lives longer than {self._max_ttl_s:g} s")
        if self._not_before is not None and command.issued_at < self._not_before - self._slack():
            raise CommandExpired(f"command {command.id} was issued before this agent started")

    def _slack(self) -> float:
        """How much older than the agent's start a command may be: the clock skew allowed,
        while the record of accepted commands is intact; none once it is lost (a fresh or
        in-memory store knows no command), since a replay then looks like any other."""
        return self._max_skew_s if self._accepted.latest_issued_at() is not None else 0.0

    def _remember(self, command: Command) -> None:
        self._accepted.forget_expired(self._clock.now() - self._max_skew_s)
        if command.id in self._accepted:
            raise CommandReplayed(f"command {command.id} was already accepted")
        highest = self._accepted.highest_epoch()
        if command.epoch and command.epoch < highest:  # 0: a lone (SQLite) coordinator
            raise StaleEpoch(
                f"command {command.id} is from leadership epoch {command.epoch}, below the "
                f"{highest} already seen: a coordinator that no longer leads"
            )
        latest = self._accepted.latest_issued_at()
        if latest is not None and command.issued_at < latest - ORDER_SLACK_S:
            raise CommandReplayed(
                f"command {command.id} was issued {latest - command.issued_at:.1f} s before "
                "the latest accepted one"
            )
        if len(self._accepted) >= self._max_cached:
            raise CommandRejected("replay cache is full: refusing commands until ids expire")
        self._accepted.add(command)
