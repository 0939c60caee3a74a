"""The demo's in-process MQTT broker (amqtt), with one of its races closed.

amqtt 0.12.1 (the newest) walks its subscription table with `await`s inside the loop
(`_handle_client_session`, `_del_all_subscriptions`, the broadcast loop): when one agent
connects while another subscribes, the walk fails with "dictionary changed size during
iteration", the connection is dropped and the traceback lands on the demo's terminal.
Walking a snapshot instead is what upstream's loops need; the table's contents and every
write to it stay amqtt's own.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from amqtt.broker import Broker


class SnapshotWalks(dict[Any, Any]):
    """A dict whose iteration (keys, values, items) walks a copy taken when it starts."""

    def __iter__(self) -> Iterator[Any]:
        return iter(list(super().keys()))

    def keys(self) -> Any:
        return list(super().keys())

    def values(self) -> Any:
        return list(super().values())

    def items(self) -> Any:
        return list(super().items())


async def start_broker(port: int) -> Broker:
    broker = Broker({"listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}}})
    table = getattr(broker, "_subscriptions", None)
    if type(table) is dict:  # a later amqtt may rename it; then it has its own fix or not
        broker._subscriptions = SnapshotWalks(table)
    await broker.start()
    return broker
