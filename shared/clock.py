"""An injectable clock, so policy and signing run the same under the daemon and the simulator."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """Wall-clock seconds since the epoch; the only notion of time pure code may use."""

    def now(self) -> float: ...


class SystemClock:
    """The real clock, for daemons."""

    def now(self) -> float:
        return time.time()


class ManualClock:
    """A clock that moves only when told to: for tests and the simulator's virtual time."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock does not run backwards")
        self._now += seconds

    def set(self, when: float) -> None:
        self._now = when
