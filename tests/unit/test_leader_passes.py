"""A bug in a leader's pass is logged with its traceback and the passes go on; after three
in a row a leader sharing the store hands the lead to a standby; the store being away is an
outage, not a bug; a stop goes through."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace

import pytest
import sqlalchemy as sa

from coordinator.core.ratelimit import Outage
from coordinator.daemon.coordinator import Coordinator
from shared.edge.tasks import Stopped


class Dispatcher:
    def __init__(self, outcomes: list[BaseException | None]) -> None:
        self.outcomes = outcomes
        self.ticks = 0

    async def tick(self, now: float) -> list[str]:
        self.ticks += 1
        outcome = self.outcomes.pop(0) if self.outcomes else None
        if outcome is not None:
            raise outcome
        return []


class Leadership:
    def __init__(self, shared: bool) -> None:
        self.shared, self.lease_s = shared, 10.0
        self.handed: list[tuple[str, float]] = []

    def hand_over(self, why: str, rest_s: float) -> None:
        self.handed.append((why, rest_s))


class Power:
    def __init__(self) -> None:
        self.ticks = 0

    async def tick(self, now: float, jobs: list[str]) -> None:
        self.ticks += 1


def coordinator(outcomes, shared: bool = True):
    parts = SimpleNamespace(
        dispatcher=Dispatcher(outcomes),
        power=Power(),
        leadership=Leadership(shared),
        clock=SimpleNamespace(now=lambda: 1000.0),
    )
    return Coordinator(parts), parts  # type: ignore[arg-type]


def passes(made: Coordinator, count: int) -> None:
    outage = Outage("passes")

    async def run() -> None:
        for _ in range(count):
            await made.one_pass(outage)

    asyncio.run(run())


def test_a_bug_is_logged_with_its_traceback_and_the_next_pass_runs(caplog):
    made, parts = coordinator([RuntimeError("Set changed size during iteration"), None])
    with caplog.at_level(logging.ERROR):
        passes(made, 2)
    assert parts.dispatcher.ticks == 2
    assert parts.power.ticks == 1  # the second pass went through
    failed = [r for r in caplog.records if "pass failed" in r.getMessage()]
    assert len(failed) == 1
    assert failed[0].exc_info is not None  # the traceback
    assert made.failed_passes == 0
    assert parts.leadership.handed == []


def test_three_in_a_row_hand_the_lead_over_on_a_shared_store():
    made, parts = coordinator([KeyError("x")] * 3)
    passes(made, 3)
    assert parts.leadership.handed == [("3 passes in a row failed", 30.0)]
    lone, lone_parts = coordinator([KeyError("x")] * 3, shared=False)
    passes(lone, 3)
    assert lone_parts.leadership.handed == []  # SQLite's lone process keeps leading


def test_the_store_away_is_an_outage_and_a_stop_goes_through():
    made, _ = coordinator([sa.exc.OperationalError("SELECT", {}, Exception("gone"))])
    passes(made, 1)
    assert made.failed_passes == 0
    stopping, _ = coordinator([Stopped()])
    with pytest.raises(Stopped):
        passes(stopping, 1)
