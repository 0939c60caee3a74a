from __future__ import annotations

import dataclasses

import msgpack
import pytest

from coordinator.core.ingest import Gone, Ingest, Limits, Reset, Routed
from coordinator.core.ratelimit import RateLimiter
from coordinator.core.registry import Registry
from coordinator.core.seqs import SeqTracker
from shared.codec import encode, frame
from shared.messages import Event, TelemetryBatch
from shared.topics import Kind, topic
from tests import factories

NOW = factories.TS + 60


def ingest(**limits: float) -> Ingest:
    return Ingest(Registry(30), SeqTracker({}), Limits(**limits))  # type: ignore[arg-type]


def said_hello(target: Ingest, *nodes: str) -> Ingest:
    for node in nodes:
        target.handle(topic(node, Kind.HELLO), encode(factories.hello(node)), NOW)
    return target


def send(target: Ingest, batch: TelemetryBatch, now: float = NOW) -> Routed:
    return target.handle(topic(batch.node, Kind.TELEMETRY), encode(batch), now)


def test_good_telemetry_is_routed_to_the_store_with_its_gap():
    target = said_hello(ingest(), "n1")
    routed = send(target, factories.telemetry("n1", seq_first=10))
    assert [(b.seq_first, b.seq_last) for b in routed.batches] == [(10, 11)]
    assert routed.gap == ("n1", 0, 9)
    assert target.received["telemetry"] == 1


def test_only_the_seqs_the_store_lacks_are_written():
    target = said_hello(ingest(), "n1")
    send(target, factories.telemetry("n1", seq_first=0, count=5))  # sample seq i at TS + i
    send(target, factories.telemetry("n1", seq_first=8, count=2, ts=factories.TS + 8))
    again = send(target, factories.telemetry("n1", seq_first=3, count=6, ts=factories.TS + 3))
    assert [(b.seq_first, b.seq_last) for b in again.batches] == [(5, 7)]  # 5-7 were missing
    assert [s.ts for s in again.batches[0].samples] == [factories.TS + i for i in (5, 6, 7)]
    assert target.duplicates == 3
    assert send(target, factories.telemetry("n1", seq_first=0, count=2)).batches == ()
    assert target.dropped == {}


def test_nothing_but_a_hello_introduces_a_node():
    target = ingest()
    for kind, message in [
        (Kind.TELEMETRY, factories.telemetry("ghost")),
        (Kind.STATUS, factories.status("ghost")),
    ]:
        assert target.handle(topic("ghost", kind), encode(message), NOW) == Routed()
    assert target.dropped == {"unknown_node": 2}
    assert target.registry.nodes == {}
    said_hello(target, "ghost")
    assert send(target, factories.telemetry("ghost")).batches != ()


def test_forged_names_cannot_grow_the_registry_past_max_nodes():
    target = said_hello(ingest(max_nodes=3), *(f"forged-{i}" for i in range(10)))
    assert len(target.registry.nodes) == 3
    assert target.dropped == {"max_nodes": 7}


def test_a_node_turned_away_for_room_is_taken_at_its_next_message_once_there_is_room():
    """`dormouse nodes forget` makes room: the real agent, still sending, is taken at its next
    batch without a restart (its hello was kept); a forged hello followed by nothing stays
    out, and while there is no room the batch is dropped as before."""
    target = said_hello(ingest(max_nodes=2), "forged-1", "forged-2", "real", "forged-3")
    assert target.dropped == {"max_nodes": 2}
    assert send(target, factories.telemetry("real")) == Routed()  # still no room
    assert target.dropped["unknown_node"] == 1
    for forged in ("forged-1", "forged-2"):
        assert target.registry.forget(forged, NOW + 1)
    routed = send(target, factories.telemetry("real", seq_first=0))
    assert [(b.seq_first, b.seq_last) for b in routed.batches] == [(0, 1)]
    assert set(target.registry.nodes) == {"real"}
    assert target.registry.nodes["real"].hello == factories.hello("real")
    assert target.dropped["unknown_node"] == 1  # forged-3 sent nothing: not taken


@pytest.mark.parametrize(
    ("first_ts", "reason"),
    [(factories.TS + 60 + 3600, "future_ts"), (0.0, "too_old")],  # 1970
)
def test_samples_stamped_far_from_our_clock_are_refused_and_claim_no_seq(first_ts, reason):
    """A refused batch claims none of its seqs: the real samples with those seqs are
    stored when they come, not filed as duplicates."""
    target = said_hello(ingest(max_skew_s=300, max_age_s=86400), "n1")
    send(target, factories.telemetry("n1", seq_first=0, count=1))
    bad = TelemetryBatch(node="n1", seq_first=1, samples=(factories.sample(first_ts),))
    routed = send(target, bad)
    assert (routed.batches, routed.gap) == ((), None)
    assert target.dropped == {reason: 1}
    real = send(target, factories.telemetry("n1", seq_first=1, count=2))
    assert [(b.seq_first, b.seq_last) for b in real.batches] == [(1, 2)]
    assert (real.gap, target.duplicates) == (None, 0)


@pytest.mark.parametrize("tracked", [True, False])  # role all, and an ingest worker
def test_one_crafted_batch_cannot_silence_a_node(tracked):
    """The black-box case: a batch far in the future claiming a new stream high above the
    node's. It is refused and moves nothing: the node's real samples keep being stored."""
    from coordinator.core.seqs import Untracked  # noqa: PLC0415

    seqs = SeqTracker({}) if tracked else Untracked()
    target = said_hello(Ingest(Registry(30), seqs, Limits()), "n1")
    send(target, factories.telemetry("n1", seq_first=0, count=3))
    crafted = dataclasses.replace(
        TelemetryBatch(
            node="n1", seq_first=99_900_000_000_000, samples=(factories.sample(9.99e10),)
        ),
        stream_first=99_900_000_000_000,
    )
    assert send(target, crafted) == Routed()
    assert target.dropped == {"future_ts": 1}
    assert target.stream_resets == 0
    later = send(target, factories.telemetry("n1", seq_first=3, count=5))
    assert [(b.seq_first, b.seq_last) for b in later.batches] == [(3, 7)]
    assert target.duplicates == 0


@pytest.mark.parametrize("tracked", [True, False])
def test_seqs_ahead_of_their_own_stamps_are_refused_in_every_role(tracked):
    """An ingest worker (no seq tracker) stored seq 2**63 - 1; no agent can number that
    far: a spool counts from its clock in ms, at most one sample a millisecond."""
    from coordinator.core.seqs import Untracked  # noqa: PLC0415

    seqs = SeqTracker({}) if tracked else Untracked()
    target = said_hello(Ingest(Registry(30), seqs, Limits()), "n1")
    for first in (2**63 - 1, int((factories.TS + 3600) * 1000)):
        assert send(target, factories.telemetry("n1", seq_first=first, count=1)) == Routed()
    assert target.dropped == {"seq_jump": 2}


def test_a_forged_seq_near_the_top_is_refused_either_way():
    target = said_hello(ingest(), "h4")
    send(target, factories.telemetry("h4", seq_first=0))
    top = 2**63 - 10
    legacy = factories.telemetry("h4", seq_first=top)
    claimed = dataclasses.replace(legacy, stream_first=top)  # a "new stream" in year 292M
    for forged in (legacy, claimed):
        assert send(target, forged) == Routed()
    assert target.dropped == {"seq_jump": 2}
    assert send(target, factories.telemetry("h4", seq_first=2)).gap is None


def test_a_new_spool_is_a_stream_reset_not_duplicates():
    target = said_hello(ingest(), "n1")
    send(target, factories.telemetry("n1", seq_first=0, count=50))
    start = int(factories.TS * 1000)
    fresh = dataclasses.replace(
        factories.telemetry("n1", seq_first=start, count=3), stream_first=start
    )
    routed = send(target, fresh)
    assert routed.reset == Reset("n1", start, 0)
    assert (routed.gap, target.duplicates) == (None, 0)
    assert [(b.seq_first, b.seq_last) for b in routed.batches] == [(start, start + 2)]
    assert target.stream_resets == 1


def test_bad_messages_are_counted_by_reason_and_never_routed():
    target = ingest()
    cases = [
        ("not/a/topic", encode(factories.status("n1"))),
        (topic("n2", Kind.STATUS), encode(factories.status("n1"))),
        (topic("n1", Kind.STATUS), b"garbage"),
        (topic("n1", Kind.CMD), encode(factories.command("n1"))),
    ]
    for name, payload in cases:
        assert target.handle(name, payload, NOW).batches == ()
    assert target.dropped == {"topic": 1, "node_mismatch": 1, "lz4": 1, "unexpected": 1}
    assert list(target.last_error)[-1] == "unexpected"  # the newest reason is last
    assert target.registry.nodes == {}


def test_hello_and_status_update_the_registry():
    target = ingest()
    target.handle(topic("gpu-01", Kind.HELLO), encode(factories.hello("gpu-01")), 1.0)
    target.handle(topic("gpu-01", Kind.STATUS), encode(factories.status("gpu-01")), 2.0)
    assert target.registry.nodes["gpu-01"].state == "online"
    assert target.registry.nodes["gpu-01"].hello.cpus == 32


def test_rate_limiter_summarises_what_it_held_back():
    limiter = RateLimiter(10)
    assert limiter.allow("schema", 0) == 1
    assert [limiter.allow("schema", t) for t in (1, 2, 3)] == [None, None, None]
    assert limiter.allow("lz4", 4) == 1  # keys are independent
    assert limiter.allow("schema", 10) == 4


def test_seqs_numbered_again_are_counted_as_reused_not_filed_as_duplicates():
    """An agent that numbers again from an old seq (clock set back under a new spool, or a
    restart while its disk was full) sends samples newer than the node's highest seq under
    seqs already stored: that loss is counted and said, not hidden among duplicates."""
    target = said_hello(ingest(), "n1")
    send(target, factories.telemetry("n1", seq_first=0, count=10, ts=NOW - 100))
    send(target, factories.telemetry("n1", seq_first=3, count=2, ts=NOW - 97))  # redelivery
    assert (target.duplicates, target.dropped) == (2, {})
    again = send(target, factories.telemetry("n1", seq_first=5, count=3, ts=NOW - 10))
    assert again.batches == ()
    assert target.dropped == {"seq_reused": 3}
    assert target.duplicates == 2
    assert "newer than the node's highest seq" in target.last_error["seq_reused"]


def test_an_agents_word_on_seqs_it_no_longer_holds_gives_up_exactly_those_missing():
    target = said_hello(ingest(), "n1")
    send(target, factories.telemetry("n1", seq_first=0, count=2))
    send(target, factories.telemetry("n1", seq_first=10, count=2, ts=factories.TS + 10))
    said = Event(node="n1", ts=NOW, kind="seqs_gone", seq_first=0, seq_last=5)
    routed = target.handle(topic("n1", Kind.EVENTS), encode(said), NOW)
    assert routed.gone == Gone("n1", 0, 5, 4)  # 2..5 were missing; 0, 1 stored
    assert routed.event is None  # not a report for the dispatcher
    assert (target.seqs.lost_seqs, target.seqs.missing("n1")) == (4, 4)  # 6..9 still asked
    forged = {"v": 1, "node": "n1", "ts": NOW, "kind": "seqs_gone", "seq_first": 9}
    assert target.handle(topic("n1", Kind.EVENTS), frame(msgpack.packb(forged)), NOW) == Routed()
    assert target.dropped == {"schema": 1}  # a range is required
