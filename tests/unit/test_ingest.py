from __future__ import annotations

from coordinator.core.ingest import Ingest
from coordinator.core.ratelimit import RateLimiter
from coordinator.core.registry import Registry
from coordinator.core.seqs import SeqTracker
from shared.codec import encode
from shared.topics import Kind, topic
from tests import factories


def ingest() -> Ingest:
    return Ingest(Registry(30), SeqTracker({}))


def test_good_telemetry_is_routed_to_the_store_with_its_gap():
    target = ingest()
    routed = target.handle(
        topic("n1", Kind.TELEMETRY), encode(factories.telemetry("n1", seq_first=10)), 1.0
    )
    assert routed.batch is not None
    assert routed.gap == ("n1", 0, 9)
    assert target.received["telemetry"] == 1


def test_bad_messages_are_counted_by_reason_and_never_routed():
    target = ingest()
    cases = [
        ("not/a/topic", encode(factories.status("n1"))),
        (topic("n2", Kind.STATUS), encode(factories.status("n1"))),
        (topic("n1", Kind.STATUS), b"garbage"),
        (topic("n1", Kind.CMD), encode(factories.command("n1"))),
    ]
    for name, payload in cases:
        assert target.handle(name, payload, 1.0).batch is None
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
