"""`GET /api/v1/stream`: the fleet as server-sent events, for the console's live view.

The first event (`fleet`) has every node, the newest jobs and power events; after it, each
`interval` sends only what changed (`changes`), so an open console costs the coordinator what
changes in the fleet, not the fleet's size each second. A comment line every `KEEPALIVE_S`
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

from coordinator.http.api import Api

KEEPALIVE_S = 15.0
SEEN_EVERY_S = 10.0  # when nodes were last heard from, sent this often (it changes each second)


def event(name: str, payload: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(payload, separators=(',', ':'))}\n\n"


def node_changes(sent: dict[str, str], shapes: dict[str, str]) -> tuple[list[str], list[str]]:
    """(nodes new or changed since `sent`, nodes gone): `last_seen` aside, which changes with
    every sample and is sent every `SEEN_EVERY_S` on its own."""
    changed = [n for n, shape in shapes.items() if sent.get(n) != shape]
    return changed, [n for n in sent if n not in shapes]


async def changes(api: Api, request: Request, interval_s: float) -> AsyncIterator[str]:
    """A `fleet` event with everything first, then `changes` events with only what changed:
    the nodes whose summaries did, the queue when it did, and every `SEEN_EVERY_S` each
    node's `last_seen`. The listing and the queue are read once for every open stream."""
    yield "retry: 2000\n\n"
    listing, queue = await api.fleet.get(), await api.queue.get()
    yield event("fleet", {"nodes": listing.nodes, **queue, "time": api.clock.now()})
    sent, sent_queue = dict(listing.shapes), queue
    seen_at = quiet_since = time.monotonic()
    while not await request.is_disconnected():
        await asyncio.sleep(interval_s)
        listing, queue = await api.fleet.get(), await api.queue.get()
        changed, gone = node_changes(sent, listing.shapes)
        update: dict[str, Any] = {}
        if changed or gone:
            wanted = set(changed)
            update["nodes"] = [n for n in listing.nodes if n["node"] in wanted]
            update["gone"] = gone
            sent = dict(listing.shapes)
        if queue is not sent_queue and queue != sent_queue:
            update |= queue
        sent_queue = queue
        now = time.monotonic()
        if now - seen_at >= SEEN_EVERY_S:
            update["seen"] = {n["node"]: n["last_seen"] for n in listing.nodes}
            seen_at = now
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
