"""A loop that loses its cancellation (as asyncio.wait_for can on Python 3.11) still stops,
and one inside a task group takes its siblings with it."""

from __future__ import annotations

import asyncio

from shared.edge.tasks import Stopped, Stopping


async def looping(stopping: Stopping, swallow: list[bool]) -> None:
    while not stopping.requested:
        try:
            await asyncio.sleep(0.01)
        except asyncio.CancelledError:
            if not swallow[0]:
                raise
            # else: what wait_for does in the race on 3.11: carry on as if nothing happened


async def test_a_swallowed_cancel_runs_on_unless_the_flag_is_set():
    swallow = [True]
    unflagged = asyncio.create_task(looping(Stopping(), swallow))
    await asyncio.sleep(0.03)
    unflagged.cancel()
    _, pending = await asyncio.wait({unflagged}, timeout=0.1)
    assert pending == {unflagged}  # the hang the flag exists for
    stopping = Stopping()
    flagged = asyncio.create_task(looping(stopping, swallow))
    await asyncio.sleep(0.03)
    stopping.request()
    flagged.cancel()
    done, _ = await asyncio.wait({flagged}, timeout=1.0)
    assert done == {flagged}
    swallow[0] = False
    unflagged.cancel()
    await asyncio.wait({unflagged}, timeout=1.0)
    assert unflagged.cancelled()


async def test_check_stops_a_whole_task_group():
    stopping = Stopping()

    async def publisher() -> None:
        while True:
            await asyncio.sleep(0.01)
            stopping.check()

    async def waiting_for_commands() -> None:
        await asyncio.Event().wait()  # blocked until cancelled

    async def owner() -> str:
        outcome = "ended"
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(publisher())
                group.create_task(waiting_for_commands())
        except* Stopped:
            outcome = "stopped"
        return outcome

    running = asyncio.create_task(owner())
    await asyncio.sleep(0.03)
    stopping.request()
    assert await asyncio.wait_for(running, 1.0) == "stopped"
