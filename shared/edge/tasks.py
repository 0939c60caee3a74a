"""Cancellation that sticks, for the daemons' long-running loops.

On Python 3.11, `asyncio.wait_for` (aiomqtt publishes and subscribes through it) can swallow
a cancellation that lands in the same loop tick as the future it waits for completes
(cpython#86296; 3.12 rewrote `wait_for`). A loop that swallowed one goes on forever, and the
task group that cancelled it never exits: a daemon that ignores SIGTERM. A cancelled task
stays `cancelling()` until it ends, so each loop calls `check_cancelled()` once a turn and
the swallowed cancellation is raised there.
"""

from __future__ import annotations

import asyncio


def check_cancelled() -> None:
    """Raise CancelledError if this task was asked to stop and the request got lost."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
