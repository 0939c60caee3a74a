"""Scale-out roles, the parts without a broker or database: settings, subscriptions and
sessions per role, an ingest worker's untracked seqs, the node_live digest and the leader's
registry fed from it, and acknowledgements only after the commit."""

from __future__ import annotations

import dataclasses

import pytest
from paho.mqtt.packettypes import PacketTypes

from coordinator.core.ingest import Ingest
from coordinator.core.live import Digest, digest_every
from coordinator.core.registry import Registry
from coordinator.core.seqs import Untracked
from coordinator.daemon.mqtt import client_id, session_kwargs, subscriptions
from coordinator.settings import CoordinatorConfig
from shared.codec import encode
from shared.config import load_config
from shared.errors import ConfigError
from shared.messages import GpuSample
from shared.topics import Kind, topic
from tests import factories

NOW = factories.TS + 60
PG = "postgresql+psycopg://u@h/db"


def config(**values: object) -> CoordinatorConfig:
    return dataclasses.replace(CoordinatorConfig(), **values)  # type: ignore[arg-type]


def test_split_roles_need_postgresql_and_mqtt_5():
    assert config().cross_check() is None
    assert "needs a PostgreSQL store" in (config(role="ingest").cross_check() or "")
    assert config(role="leader", db=PG).cross_check() is None
    no_v5 = config(role="ingest", db=PG, receive_maximum=0).cross_check()
    assert no_v5 == "role ingest needs MQTT 5 (receive_maximum above 0)"


def test_role_and_receive_maximum_are_checked_when_loaded():
    with pytest.raises(ConfigError, match=r"role .*expected one of all, ingest, leader"):
        load_config(CoordinatorConfig, overrides={"role": "worker"})
    with pytest.raises(ConfigError, match="at most 65535"):
        load_config(CoordinatorConfig, overrides={"receive_maximum": 70_000})


def test_each_role_subscribes_to_its_part():
    telemetry = "dormouse/v1/nodes/+/telemetry"
    assert subscriptions(config()) == [
        "dormouse/v1/nodes/+/hello",
        "dormouse/v1/nodes/+/status",
        telemetry,
        "dormouse/v1/nodes/+/events",
    ]
    assert subscriptions(config(role="ingest", share_group="g1")) == [
        "dormouse/v1/nodes/+/hello",
        f"$share/g1/{telemetry}",
    ]
    assert telemetry not in subscriptions(config(role="leader"))


def test_ingest_sessions_are_clean_and_distinct_others_kept():
    ingest = session_kwargs(config(role="ingest", receive_maximum=500))
    assert ingest["clean_start"] is True
    assert ingest["properties"].SessionExpiryInterval == 0
    assert ingest["properties"].ReceiveMaximum == 500
    assert ingest["properties"].packetType == PacketTypes.CONNECT
    kept = session_kwargs(config(role="leader"))
    assert kept["clean_start"] is False
    assert kept["properties"].SessionExpiryInterval > 0
    assert session_kwargs(config(receive_maximum=0)) == {
        "clean_session": False,
        "max_queued_incoming_messages": 50_000,
    }
    assert client_id(config(role="ingest", client_id="c")).startswith("c-")
    assert client_id(config(role="leader", client_id="c")) == "c"


def test_an_ingest_worker_stores_every_batch_whole_and_asks_for_nothing():
    target = Ingest(Registry(30), Untracked())
    target.handle(topic("n1", Kind.HELLO), encode(factories.hello("n1")), NOW)
    routed = [
        target.handle(topic("n1", Kind.TELEMETRY), encode(factories.telemetry("n1", first)), NOW)
        for first in (10, 20, 12)  # another worker took 14..19; 12..13 redelivered
    ]
    assert [[(b.seq_first, b.seq_last) for b in r.batches] for r in routed] == [
        [(10, 11)],
        [(20, 21)],
        [(12, 13)],
    ]
    assert all(r.gap is None and r.reset is None for r in routed)
    assert target.seqs.due(NOW) == ([], [])


def sick(batch, health: str = "failed"):
    gpu = GpuSample(index=0, uuid="GPU-0", metrics={}, health=health, reason="XID 79")
    last = dataclasses.replace(batch.samples[-1], gpus=(gpu,))
    return dataclasses.replace(batch, samples=(*batch.samples[:-1], last))


def test_the_digest_writes_each_node_every_few_seconds_and_at_once_on_a_change():
    digest = Digest(every_s=5.0)
    first = digest.rows([factories.telemetry("n1", 10), factories.telemetry("n1", 12)], NOW)
    assert [(r.node, r.seq, r.seen_at) for r in first] == [("n1", 13, NOW)]  # the newest
    digest.written(first)
    assert digest.rows([factories.telemetry("n1", 14)], NOW + 1) == []
    assert [r.seq for r in digest.rows([factories.telemetry("n1", 16)], NOW + 5)] == [17]
    health = digest.rows([sick(factories.telemetry("n1", 18))], NOW + 1)
    assert health[0].latest["gpu_health"] == {"0": ["failed", "XID 79"]}
    renewed = dataclasses.replace(factories.telemetry("n1", 9_000), stream_first=9_000)
    assert [r.stream_first for r in digest.rows([renewed], NOW + 1)] == [9_000]


def test_the_digest_is_written_every_10_s_at_most_whatever_offline_after_is():
    """The leader's gap scan learns each node's newest seq from the digest: with
    `offline_after = "1h"` a third of it (20 min) left a broker's dropped batches unasked."""
    assert digest_every(30.0) == 10.0
    assert digest_every(3600.0) == 10.0
    assert digest_every(6.0) == 2.0


def test_the_leader_learns_liveness_latest_and_health_from_the_digest():
    registry = Registry(30)
    registry.on_hello(factories.hello("n1"), NOW)
    watched = registry.watch()
    latest = Digest(10.0).rows([sick(factories.telemetry("n1", 10))], NOW)[0].latest
    registry.on_live("n1", NOW - 1, latest, NOW)
    view = registry.nodes["n1"]
    assert (view.last_seen, view.latest["seq"]) == (NOW - 1, 11)
    assert [(c.node, c.kind) for c in registry.health_changes] == [("n1", "failed")]
    assert watched == {"n1"}
    watched.clear()
    registry.on_live("n1", NOW - 1, latest, NOW + 1)  # the same row read again
    assert watched == set()
    assert len(registry.health_changes) == 1
    registry.on_live("ghost", NOW, latest, NOW)  # no hello: not taken
    assert "ghost" not in registry.nodes
