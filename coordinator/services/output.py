"""A job's output from its node (`dormouse jobs logs`, `GET /api/v1/jobs/{id}/logs?live=1`):
write a request, wait for the leader to send it and the node to answer
(`coordinator.daemon.outputs`), read the answer. Bounded: one piece is at most
`OUTPUT_BYTES`; a caller that wants more (`--follow`) asks again from `next`."""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa

from coordinator.core.jobstate import JobState
from coordinator.services.jobs import JobError, UnknownJob
from coordinator.store import jobs as job_rows
from coordinator.store import outputs as output_rows
from shared.errors import Conflict
from shared.messages import OUTPUT_BYTES

WAIT_S = 15.0  # a pass or two of the leader, and the node's answer
POLL_S = 0.2


class OutputUnavailable(JobError, Conflict):
    """The node cannot be asked now (asleep, failed) or has no such output."""


def fetch(
    engine: sa.Engine,
    job_id: str,
    stream: str = "stdout",
    offset: int = -OUTPUT_BYTES,
    *,
    wait_s: float = WAIT_S,
) -> dict[str, Any]:
    """A piece of the job's `stream` from byte `offset` (negative: from the end), with
    where the next piece starts and the job's state when it was read."""
    with engine.begin() as conn:
        job = job_rows.get(conn, job_id)
        if job is None:
            raise UnknownJob(f"no job {job_id!r}")
        if not job.node:
            raise OutputUnavailable(f"job {job_id} is {job.state.value}: it has run on no node")
        node = job.node
        request_id = output_rows.ask(conn, job_id, node, stream, offset=offset, now=time.time())
    answer = _wait(engine, request_id, node, wait_s)
    with engine.connect() as conn:
        now = job_rows.get(conn, job_id)
    if answer.detail and now is not None and now.state is JobState.PLACED:
        answer = output_rows.Answer("", 0, max(offset, 0), 0, "")  # not started: nothing yet
    elif answer.detail:
        raise OutputUnavailable(answer.detail)
    return {
        "id": job_id,
        "node": node,
        "stream": stream,
        "state": now.state.value if now else job.state.value,
        "offset": answer.start,
        "next": answer.next,
        "size": answer.size,
        "output": answer.output,
    }


def _wait(engine: sa.Engine, request_id: int, node: str, wait_s: float) -> output_rows.Answer:
    deadline = time.monotonic() + wait_s
    while True:
        with engine.begin() as conn:
            answer = output_rows.take(conn, request_id)
            if answer is not None:
                return answer
            if time.monotonic() > deadline:
                output_rows.forget(conn, request_id)
                raise OutputUnavailable(
                    f"no answer from {node} in {wait_s:g}s (is a coordinator leading?)"
                )
        time.sleep(POLL_S)
