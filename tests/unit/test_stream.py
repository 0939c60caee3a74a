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
    return Listing(nodes)


@dataclass
class Scripted:
    values: list[Any]

    async def get(self) -> Any:
        return self.values.pop(0) if len(self.values) > 1 else self.values[0]


class FakeApi:
    def __init__(
        self, listings: list[Listing], states: list[dict[str, str]], queues: list[dict[str, Any]]
    ) -> None:
        self.fleet, self.states, self.queue = Scripted(listings), Scripted(states), Scripted(queues)
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


def test_first_everything_then_states_each_tick_and_a_gone_node_at_once(monkeypatch):
    monkeypatch.setattr(stream, "FULL_EVERY_S", 3600.0)
    api = FakeApi(
        [listing([A, B]), listing([A | {"last_seen": 2.0}])],
        [{"a": "online", "b": "online"}, {"a": "online", "b": "asleep"}, {"a": "online"}],
        [QUEUE],
    )
    got = events(api, 3)
    assert got[0] == ("fleet", {"nodes": [A, B], "jobs": [], "events": [], "time": 100.0})
    assert got[1] == ("changes", {"states": {"b": "asleep"}, "time": 100.0})
    assert got[2] == ("changes", {"nodes": [], "gone": ["b"], "seen": {"a": 2.0}, "time": 100.0})
    assert len(got) == 3  # the third tick: nothing changed, nothing sent


def test_summaries_every_full_period_only_those_changed_and_the_queue(monkeypatch):
    monkeypatch.setattr(stream, "FULL_EVERY_S", 0.0)
    busier = A | {"cpu_util_pct": 50.0, "last_seen": 5.0}
    job = {"jobs": [{"id": "j1", "state": "pending", "held": None}], "events": []}
    api = FakeApi(
        [listing([A, B]), listing([busier, B | {"last_seen": 5.0}])],
        [{"a": "online", "b": "online"}],
        [QUEUE, job],
    )
    got = events(api, 1)
    assert got[1] == (
        "changes",
        {"nodes": [busier], "gone": [], "seen": {"a": 5.0, "b": 5.0}} | job | {"time": 100.0},
    )
