"""A value read from the store at most once per `max_age_s`, however many clients ask.

The coordinator writes node rows once a second, so a fleet listing rebuilt more often shows
nothing new; at 10,000 nodes a rebuild costs a few hundred milliseconds of SQL and JSON. So
readers get the last value built, and a stale one starts one rebuild in a worker thread
(stale-while-revalidate). Only the first read waits. A failed rebuild keeps the old value
and is logged; the next read past `max_age_s` tries again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from starlette.concurrency import run_in_threadpool

log = logging.getLogger(__name__)
T = TypeVar("T")


class Fresh(Generic[T]):
    _value: T  # set by the first rebuild, before any read returns

    def __init__(
        self, build: Callable[[], T], max_age_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._build, self._max_age_s, self._clock = build, max_age_s, clock
        self._built = False
        self._built_at = 0.0
        self._lock = asyncio.Lock()
        self._refreshing: asyncio.Task[None] | None = None

    async def get(self) -> T:
        if not self._built:
            async with self._lock:
                if not self._built:
                    await self._rebuild()
        elif self._clock() - self._built_at > self._max_age_s and self._refreshing is None:
            self._refreshing = asyncio.create_task(self._background())
        return self._value

    async def _rebuild(self) -> None:
        value = await run_in_threadpool(self._build)
        self._value, self._built_at, self._built = value, self._clock(), True

    async def _background(self) -> None:
        try:
            await self._rebuild()
        except Exception as exc:  # the store is down: keep serving what was read last
            log.warning("HTTP: fleet listing not refreshed: %s", type(exc).__name__)
            self._built_at = self._clock()
        finally:
            self._refreshing = None
