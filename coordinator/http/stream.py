"""`GET /api/v1/stream`: the fleet as server-sent events, for the console's live view.

The first event (`fleet`) has every node, the newest jobs and power events; after it only
what changed goes (`changes`): nodes' states and the queue each `interval`, their metrics
every `FULL_EVERY_S`; so an open console costs the coordinator what changes in the fleet,
not a read of every node's latest sample each second. A comment line every `KEEPALIVE_S`
keeps proxies from closing a quiet stream. It ends when the client goes.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import StreamingResponse

from coordinator.http.api import Api, Listing

KEEPALIVE_S = 15.0
FULL_EVERY_S = 30.0  # nodes' whole summaries (metrics, last seen) compared this often


def event(name: str, payload: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(payload, separators=(',', ':'))}\n\n"


def node_changes(
    sent: dict[str, dict[str, Any]], shapes: dict[str, dict[str, Any]]
) -> tuple[list[str], list[str]]:
    """(nodes new or changed since `sent`, nodes gone), `last_seen` aside: it changes with
    every sample and goes in the `seen` map."""
    changed = [n for n, shape in shapes.items() if sent.get(n) != shape]
    return changed, [n for n in sent if n not in shapes]


class Sent:
    """What one stream has sent, to send only what changed."""

    def __init__(self, listing: Listing, queue: dict[str, Any], now: float) -> None:
        self.queue = queue
        self._summaries(listing, now)

    def _summaries(self, listing: Listing, now: float) -> None:
        self.shapes = dict(listing.shapes)
        self.states = {n: shape["state"] for n, shape in self.shapes.items()}
        self.full_at = now

    def due(self, states: dict[str, str], now: float) -> bool:
        """Whole summaries are compared every `FULL_EVERY_S`, and at once when a node came
        or went."""
        return now - self.full_at >= FULL_EVERY_S or states.keys() != self.states.keys()

    def summaries(self, listing: Listing, now: float) -> dict[str, Any]:
        changed, gone = node_changes(self.shapes, listing.shapes)
        wanted = set(changed)
        self._summaries(listing, now)
        return {
            "nodes": [n for n in listing.nodes if n["node"] in wanted],
            "gone": gone,
            "seen": {n["node"]: n["last_seen"] for n in listing.nodes},
        }

    def moved(self, states: dict[str, str]) -> dict[str, Any]:
        moved = {n: s for n, s in states.items() if self.states.get(n) != s}
        self.states |= moved
        return {"states": moved} if moved else {}

    def queue_change(self, queue: dict[str, Any]) -> dict[str, Any]:
        if queue is self.queue or queue == self.queue:
            return {}
        self.queue = queue
        return queue


async def changes(api: Api, request: Request, interval_s: float) -> AsyncIterator[str]:
    """A `fleet` event with everything first, then `changes` events with only what changed:
    each `interval` the nodes whose state changed and the queue when it did; every
    `FULL_EVERY_S` the nodes whose summaries (metrics) changed and when each was last heard
    from. The states, the listing and the queue are read once for every open stream, so a
    second costs a read of the nodes' states, not of every node's latest sample."""
    yield "retry: 2000\n\n"
    listing, queue = await api.fleet.get(), await api.queue.get()
    yield event("fleet", {"nodes": listing.nodes, **queue, "time": api.clock.now()})
    sent = Sent(listing, queue, time.monotonic())
    quiet_since = time.monotonic()
    while not await request.is_disconnected():
        await asyncio.sleep(interval_s)
        states, now = await api.states.get(), time.monotonic()
        if sent.due(states, now):
            update = sent.summaries(await api.fleet.get(), now)
            if not update["nodes"] and not update["gone"]:
                del update["nodes"], update["gone"]
        else:
            update = sent.moved(states)
        update |= sent.queue_change(await api.queue.get())
        if update:
            quiet_since = now
            yield event("changes", update | {"time": api.clock.now()})
        elif now - quiet_since > KEEPALIVE_S:
            quiet_since = now
            yield ": keepalive\n\n"


def stream(api: Api, request: Request, interval_s: float) -> StreamingResponse:
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(
        changes(api, request, interval_s), media_type="text/event-stream", headers=headers
    )
