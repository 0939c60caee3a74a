"""`GET /api/v1/stream`: the fleet as server-sent events, for the console's live view.

Each `interval` the stream reads what the API's lists read (nodes, the newest jobs, the
newest power events) and sends a `fleet` event only when that changed; a comment line every
`KEEPALIVE_S` keeps proxies from closing a quiet stream. It ends when the client goes.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import StreamingResponse

from coordinator.http.api import Api
from coordinator.services import jobs as jobs_service
from coordinator.services import power as power_service

KEEPALIVE_S = 15.0
JOBS_SHOWN = 200
EVENTS_SHOWN = 30


def queue_and_events(api: Api) -> dict[str, Any]:
    jobs = jobs_service.listing(api.engine, [], JOBS_SHOWN)
    events = power_service.events(api.engine, None, EVENTS_SHOWN)
    return {
        "jobs": [jobs_service.summary(j) for j in jobs],
        "events": [power_service.event_json(e) for e in events],
    }


def event(name: str, payload: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(payload, separators=(',', ':'))}\n\n"


async def changes(api: Api, request: Request, interval_s: float) -> AsyncIterator[str]:
    sent, quiet_since = "", time.monotonic()
    yield "retry: 2000\n\n"
    while not await request.is_disconnected():
        listing = await api.fleet.get()
        state = {"nodes": listing.nodes} | await run_in_threadpool(queue_and_events, api)
        body = json.dumps(state, separators=(",", ":"))
        if body != sent:
            sent, quiet_since = body, time.monotonic()
            yield event("fleet", state | {"time": api.clock.now()})
        elif time.monotonic() - quiet_since > KEEPALIVE_S:
            quiet_since = time.monotonic()
            yield ": keepalive\n\n"
        await asyncio.sleep(interval_s)


def stream(api: Api, request: Request, interval_s: float) -> StreamingResponse:
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(
        changes(api, request, interval_s), media_type="text/event-stream", headers=headers
    )
