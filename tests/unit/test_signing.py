"""Command signing: only an untampered, fresh, first-seen command for this node passes."""

from __future__ import annotations

import dataclasses
import uuid

import pytest

from agent.accepted import FileAccepted
from shared.clock import ManualClock
from shared.codec import decode, encode
from shared.errors import (
    BadSignature,
    CommandExpired,
    CommandRejected,
    CommandReplayed,
    ConfigError,
    ForeignCommand,
    StaleEpoch,
)
from shared.messages import Command, Resend, RunJob, Sleep
from shared.signing import (
    MemoryAccepted,
    Verifier,
    canonical_bytes,
    generate_key,
    key_id,
    parse_key,
    sign,
)
from shared.topics import Kind
from tests import factories

KEY = b"k" * 32


@pytest.fixture
def clock():
    return ManualClock(factories.TS + 1)


@pytest.fixture
def verifier(clock):
    return Verifier(KEY, "gpu-01", clock)


def test_signed_command_passes_once_after_a_wire_round_trip(verifier):
    signed = sign(factories.command(), KEY)
    received = decode(encode(signed), Kind.CMD, "gpu-01")
    assert verifier.verify(received) == signed


def test_unsigned_command_is_refused(verifier):
    with pytest.raises(BadSignature):
        verifier.verify(factories.command())


def test_wrong_key_is_refused(verifier):
    with pytest.raises(BadSignature):
        verifier.verify(sign(factories.command(), b"x" * 32))


@pytest.mark.parametrize(
    "change",
    [
        {"body": RunJob(job_id="j-42", argv=("rm", "-rf", "/"), gpus=(0,))},
        {"body": Resend(from_seq=0, to_seq=1)},
        {"expires_at": factories.TS + 3600},
        {"id": "c2"},
    ],
)
def test_tampered_command_is_refused(verifier, change):
    tampered = dataclasses.replace(sign(factories.command(), KEY), **change)
    with pytest.raises(BadSignature):
        verifier.verify(tampered)


def test_foreign_node_is_refused(verifier):
    with pytest.raises(ForeignCommand):
        verifier.verify(sign(factories.command(node="gpu-02"), KEY))


def test_replay_is_refused(verifier):
    signed = sign(factories.command(), KEY)
    verifier.verify(signed)
    with pytest.raises(CommandReplayed):
        verifier.verify(signed)


def test_expired_command_is_refused(verifier, clock):
    clock.advance(60 + 31)  # expires_at is issued_at + 60, skew allowance 30 s
    with pytest.raises(CommandExpired, match="expired"):
        verifier.verify(sign(factories.command(), KEY))


def test_command_from_the_future_is_refused(verifier, clock):
    clock.set(factories.TS - 3600)
    with pytest.raises(CommandExpired, match="future"):
        verifier.verify(sign(factories.command(), KEY))


def test_command_living_too_long_is_refused(verifier):
    long_lived = dataclasses.replace(factories.command(), expires_at=factories.TS + 86400)
    with pytest.raises(CommandExpired, match="longer than"):
        verifier.verify(sign(long_lived, KEY))


def test_command_issued_before_the_agent_started_is_refused(clock):
    verifier = Verifier(KEY, "gpu-01", clock, not_before=factories.TS + 45)
    with pytest.raises(CommandExpired, match="before this agent started"):
        verifier.verify(sign(factories.command(), KEY))


def test_replay_cache_forgets_expired_ids_and_stays_bounded(clock):
    verifier = Verifier(KEY, "gpu-01", clock, max_cached=2)
    for cid in ("a", "b"):
        verifier.verify(sign(factories.command(cid=cid), KEY))
    with pytest.raises(CommandRejected, match="replay cache is full"):
        verifier.verify(sign(factories.command(cid="c"), KEY))
    clock.advance(100)  # a and b have expired: their ids may go
    fresh = dataclasses.replace(
        factories.command(cid="d"), issued_at=clock.now(), expires_at=clock.now() + 60
    )
    verifier.verify(sign(fresh, KEY))


def test_canonical_bytes_ignore_the_signature():
    command = factories.command()
    assert canonical_bytes(command) == canonical_bytes(sign(command, KEY))


def test_keys():
    assert len(generate_key()) == 64
    assert parse_key(" " + "a" * 20 + "\n") == b"a" * 20
    with pytest.raises(ConfigError, match="at least 16"):
        parse_key("short")


def signed(clock: ManualClock, issued_offset: float = 0.0) -> Command:
    """A command issued `issued_offset` s from the clock's now, living 60 s."""
    at = clock.now() + issued_offset
    return sign(
        Command(id=uuid.uuid4().hex, node="gpu-01", issued_at=at, expires_at=at + 60,
                body=Sleep(reason="idle")),
        KEY,
    )  # fmt: skip


def test_a_replay_after_a_restart_is_refused_when_accepted_ids_are_on_disk(tmp_path, clock):
    """Capture a signed command, restart the agent (a new verifier over the same file),
    republish the bytes 14 s later: refused, by id and by issue order."""
    path = tmp_path / "accepted.sqlite3"
    first = Verifier(KEY, "gpu-01", clock, accepted=FileAccepted(path))
    captured = signed(clock)
    first.verify(captured)
    later = signed(clock, issued_offset=5.0)
    first.verify(later)
    clock.advance(14)
    restarted = Verifier(KEY, "gpu-01", clock, not_before=clock.now(), accepted=FileAccepted(path))
    with pytest.raises(CommandReplayed, match="already accepted"):
        restarted.verify(captured)
    restarted = Verifier(KEY, "gpu-01", clock, accepted=FileAccepted(path))
    older = signed(clock, issued_offset=-12.0)  # 3 s before the latest accepted
    with pytest.raises(CommandReplayed, match="before the latest accepted"):
        restarted.verify(older)
    restarted.verify(signed(clock))  # a fresh command still goes through


def at_epoch(epoch: int, cid: str) -> Command:
    return sign(dataclasses.replace(factories.command(cid=cid), epoch=epoch), KEY)


def test_a_command_from_an_older_leadership_epoch_is_refused_with_the_reason(clock, tmp_path):
    path = tmp_path / "accepted.sqlite3"
    verifier = Verifier(KEY, "gpu-01", clock, accepted=FileAccepted(path))
    verifier.verify(at_epoch(3, "c1"))
    verifier.verify(at_epoch(5, "c2"))  # a new leader took over
    with pytest.raises(StaleEpoch, match="from leadership epoch 3, below the 5 already seen"):
        verifier.verify(at_epoch(3, "c3"))  # the old one woke up
    restarted = Verifier(KEY, "gpu-01", clock, accepted=FileAccepted(path))
    with pytest.raises(StaleEpoch):
        restarted.verify(at_epoch(4, "c4"))  # the epoch survives an agent restart
    assert restarted.verify(at_epoch(5, "c5")).epoch == 5
    assert restarted.verify(at_epoch(0, "c6")).epoch == 0  # a lone coordinator: not fenced


def test_the_epoch_is_signed_and_epoch_0_is_the_old_wire_format():
    signed = at_epoch(7, "c1")
    forged = dataclasses.replace(signed, epoch=8)
    with pytest.raises(BadSignature):
        Verifier(KEY, "gpu-01", ManualClock(factories.TS + 1)).verify(forged)
    assert "epoch" not in at_epoch(0, "c2").to_wire()
    assert canonical_bytes(at_epoch(0, "c2")) == canonical_bytes(factories.command(cid="c2"))
    assert decode(encode(signed), Kind.CMD, "gpu-01") == signed


def test_key_id_names_a_key_without_revealing_it():
    key = generate_key().encode()
    assert key_id(key) == key_id(key) == Verifier(key, "n1", ManualClock(0.0)).key_id
    assert len(key_id(key)) == 16
    assert int(key_id(key), 16) >= 0  # hex
    assert key_id(key) not in key.decode()
    assert key_id(key) != key_id(generate_key().encode())


def test_a_replay_after_the_accepted_store_was_lost_is_refused(tmp_path, clock):
    """The accepted store is lost (deleted, or in memory on a read-only spool): the agent
    cannot tell a replay from a command sent before it restarted, so it takes nothing
    issued before its own start, skew allowance or not; with its record intact, a command
    a little older than the start (clock skew) still goes through."""
    captured = signed(clock)  # issued now, captured on the broker
    clock.advance(14)
    lost = Verifier(KEY, "gpu-01", clock, not_before=clock.now(), accepted=MemoryAccepted())
    with pytest.raises(CommandExpired, match="before this agent started"):
        lost.verify(captured)
    kept = MemoryAccepted()
    kept.add(signed(clock, issued_offset=-20.0))
    intact = Verifier(KEY, "gpu-01", clock, not_before=clock.now(), accepted=kept)
    intact.verify(signed(clock, issued_offset=-5.0))
