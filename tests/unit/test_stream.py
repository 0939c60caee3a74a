"""The console's live stream sends everything once, then only what changed: a node whose
summary changed (not one only heard from again), a node gone, the queue when it changed,
and every few seconds when each node was last heard from."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from coordinator.http import stream
from coordinator.http.api import Listing


def listing(nodes: list[dict[str, Any]]) -> Listing:
    shapes = {
        n["node"]: json.dumps({k: v for k, v in n.items() if k != "last_seen"}) for n in nodes
    }
    return Listing(nodes, b"", shapes)


@dataclass
class Scripted:
    values: list[Any]

    async def get(self) -> Any:
        return self.values.pop(0) if len(self.values) > 1 else self.values[0]


class FakeApi:
    def __init__(self, listings: list[Listing], queues: list[dict[str, Any]]) -> None:
        self.fleet, self.queue = Scripted(listings), Scripted(queues)
        self.clock = type("Clock", (), {"now": staticmethod(lambda: 100.0)})()


class Request:
    def __init__(self, polls: int) -> None:
        self.polls = polls

    async def is_disconnected(self) -> bool:
        self.polls -= 1
        return self.polls < 0


def events(api: FakeApi, polls: int) -> list[tuple[str, dict[str, Any]]]:
    async def read() -> list[str]:
        return [e async for e in stream.changes(api, Request(polls), 0.0)]  # type: ignore[arg-type]

    found = []
    for block in asyncio.run(read()):
        lines = dict(line.split(": ", 1) for line in block.strip().split("\n") if ": " in line)
        if "event" in lines:
            found.append((lines["event"], json.loads(lines["data"])))
    return found


A = {"node": "a", "state": "online", "last_seen": 1.0, "cpu_util_pct": 5.0}
B = {"node": "b", "state": "online", "last_seen": 1.0, "cpu_util_pct": 7.0}
QUEUE: dict[str, Any] = {"jobs": [], "events": []}


def test_first_everything_then_only_the_changed_node_and_the_gone_one(monkeypatch):
    monkeypatch.setattr(stream, "SEEN_EVERY_S", 3600.0)
    heard_again = A | {"last_seen": 2.0}  # heard from again: not a change
    asleep = B | {"state": "asleep", "last_seen": 2.0}
    api = FakeApi(
        [listing([A, B]), listing([heard_again, B]), listing([heard_again, asleep]),
         listing([heard_again])],
        [QUEUE],
    )  # fmt: skip
    got = events(api, 3)
    assert got[0] == ("fleet", {"nodes": [A, B], "jobs": [], "events": [], "time": 100.0})
    assert got[1:] == [
        ("changes", {"nodes": [asleep], "gone": [], "time": 100.0}),
        ("changes", {"nodes": [], "gone": ["b"], "time": 100.0}),
    ]


def test_the_queue_when_it_changes_and_last_seen_on_its_own(monkeypatch):
    monkeypatch.setattr(stream, "SEEN_EVERY_S", 0.0)
    job = {"jobs": [{"id": "j1", "state": "pending", "held": None}], "events": []}
    api = FakeApi([listing([A]), listing([A | {"last_seen": 5.0}])], [QUEUE, job])
    got = events(api, 1)
    assert got[1] == ("changes", job | {"seen": {"a": 5.0}, "time": 100.0})
