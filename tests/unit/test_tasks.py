"""A loop that loses its cancellation (as asyncio.wait_for can on Python 3.11) still stops."""

from __future__ import annotations

import asyncio

from shared.edge.tasks import check_cancelled


async def looping(turns: list[int], swallow: list[bool], *, checked: bool) -> None:
    while True:
        if checked:
            check_cancelled()
        turns.append(1)
        try:
            await asyncio.sleep(0.01)
        except asyncio.CancelledError:
            if not swallow[0]:
                raise  # what wait_for does in the race: return as if nothing happened


async def test_a_checked_loop_stops_after_a_swallowed_cancel():
    task = asyncio.create_task(looping([], [True], checked=True))
    await asyncio.sleep(0.03)
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=1.0)
    assert done == {task}
    assert task.cancelled()


async def test_without_the_check_the_loop_runs_on():
    turns: list[int] = []
    swallow = [True]
    task = asyncio.create_task(looping(turns, swallow, checked=False))
    await asyncio.sleep(0.03)
    task.cancel()
    _, pending = await asyncio.wait({task}, timeout=0.1)
    assert pending == {task}  # the hang the check exists for
    before = len(turns)
    await asyncio.sleep(0.05)
    assert len(turns) > before  # still looping
    swallow[0] = False
    task.cancel()
    await asyncio.wait({task}, timeout=1.0)
    assert task.cancelled()
