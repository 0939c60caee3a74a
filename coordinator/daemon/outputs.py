"""`dormouse jobs logs`, the leader's part: each pass, send the output requests in the store
to the jobs' nodes as signed `FetchOutput` commands (or answer at once that a node cannot
be asked now: asleep, failed, unknown), and file the nodes' `job_output` answers into their
requests for the requester to read (`coordinator.store.outputs`)."""

from __future__ import annotations

import asyncio
import logging

import sqlalchemy as sa

from coordinator.core.nodestate import NodeState
from coordinator.core.registry import Registry
from coordinator.daemon.commands import Sender
from coordinator.store import outputs as output_rows
from coordinator.store.outputs import OutputRequest
from shared.messages import Event, FetchOutput

log = logging.getLogger(__name__)


class Outputs:
    def __init__(self, engine: sa.Engine, registry: Registry, sender: Sender) -> None:
        self._engine, self._registry, self._sender = engine, registry, sender

    async def tick(self, now: float) -> None:
        for request in await asyncio.to_thread(self._unsent, now):
            detail = await self._send(request)
            await asyncio.to_thread(self._mark_sent, request.id, now, detail)

    async def on_event(self, event: Event) -> None:
        await asyncio.to_thread(self._save_answer, event)

    async def _send(self, request: OutputRequest) -> str | None:
        """None once sent; else why the node cannot be asked, as the request's answer."""
        view = self._registry.nodes.get(request.node)
        if view is None or view.state is not NodeState.ONLINE:
            return f"node {request.node} is {view.state if view else 'unknown'}"
        fetch = FetchOutput(
            job_id=request.job_id, request=request.id, stream=request.stream, offset=request.offset
        )
        if not await self._sender.send(request.node, fetch):
            return f"the request could not be sent to {request.node} now"
        return None

    def _unsent(self, now: float) -> list[OutputRequest]:
        with self._engine.begin() as conn:
            return output_rows.unsent(conn, now)

    def _mark_sent(self, request_id: int, now: float, detail: str | None) -> None:
        with self._engine.begin() as conn:
            output_rows.sent(conn, request_id, now, detail)

    def _save_answer(self, event: Event) -> None:
        with self._engine.begin() as conn:
            if not output_rows.answer(conn, event):
                log.debug("output from %s for %s: not asked, or expired", event.node, event.request)
