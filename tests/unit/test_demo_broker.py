"""The demo broker's subscription table survives being changed while amqtt walks it."""

from __future__ import annotations

import socket

from coordinator.daemon.demo_broker import SnapshotWalks, start_broker


def test_walking_while_the_table_changes_does_not_fail():
    table = SnapshotWalks({"a": [], "b": []})
    walked = []
    for topic in table:  # what amqtt's loops do, with an await (another client) inside
        walked.append(topic)
        table[f"{topic}/new"] = []  # a plain dict raises here on the next step
    assert walked == ["a", "b"]
    assert set(table) == {"a", "b", "a/new", "b/new"}
    for _topic, _subs in table.items():
        table.clear()
    assert table == {}


async def test_the_demo_broker_walks_snapshots():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    broker = await start_broker(port)
    try:
        assert type(broker._subscriptions) is SnapshotWalks
    finally:
        await broker.shutdown()
