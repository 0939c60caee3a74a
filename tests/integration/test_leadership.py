"""Leader and standby on one PostgreSQL store (real Mosquitto, real agents, processes).

Two `dormouse run` processes share the store: one leads (placement, power, resends), the
other ingests and stands by. Killed with SIGKILL, the leader is replaced within the lease;
jobs submitted before, during and after end once each, and no sample is lost.
"""

from __future__ import annotations

import asyncio
import sys
import time

import pytest

from coordinator.daemon.leadership import Leadership
from coordinator.store import leadership as leader_rows
from coordinator.store.engine import create_engine, upgrade
from shared.clock import SystemClock
from shared.edge.tasks import Stopping
from tests.integration.coordinator_support import CoordinatorProcess, stored_jobs, stored_seqs
from tests.integration.test_jobs import eventually, start_agents, submit

pytestmark = pytest.mark.mqtt
LEASE_S = 4.0


pg_only = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)  # a fresh schema


def leader(coordinator: CoordinatorProcess) -> dict | None:
    return coordinator.cli("status")["leader"]


def pair(pg_store, mosquitto, tmp_path, role: str = "all") -> list[CoordinatorProcess]:
    """Two processes that may lead (and, with role leader, one ingest worker after them)."""
    made = []
    roles = {"a": role, "b": role} | ({"w": "ingest"} if role == "leader" else {})
    for name, its_role in roles.items():
        (tmp_path / name).mkdir()
        process = CoordinatorProcess(
            db_url=pg_store,
            broker=mosquitto.url,
            workdir=tmp_path / name,
            extra_env={
                "DORMOUSE_LEADER_LEASE": f"{LEASE_S:g}s",
                "DORMOUSE_JOBS_SCHEDULE_INTERVAL": "0.2s",
                "DORMOUSE_ROLE": its_role,
            },
        )
        process.start()  # one after the other: the first migrates the store
        made.append(process)
    return made


@pytest.mark.pg
@pg_only
@pytest.mark.parametrize("role", ["all", "leader"])
async def test_the_standby_takes_over_within_the_lease_and_nothing_runs_twice(
    db_url, mosquitto, tmp_path, role
):
    """`all`: two processes that each ingest everything; `leader`: two leaders that read
    telemetry from the store, and an ingest worker that writes it."""
    pg_store = db_url
    first, second, *ingest = pair(pg_store, mosquitto, tmp_path, role)
    fleet = start_agents(mosquitto, tmp_path, [2, 2])
    try:
        before = await eventually(lambda: leader(first), 20, "a leader")
        leading, standby = (
            (first, second)
            if str(first.process.pid) in before["id"]
            else (
                second,
                first,
            )
        )
        assert str(leading.process.pid) in before["id"]
        sleep = [sys.executable, "-c", "import time; time.sleep(2)"]
        jobs = [submit(leading, "--cpus", "1", "--", *sleep) for _ in range(4)]
        await eventually(
            lambda: any(j["state"] == "running" for j in stored_jobs(pg_store).values()),
            30,
            "a job running",
        )
        killed_at = time.monotonic()
        leading.kill()
        after = await eventually(
            lambda: (found := leader(standby)) and found["epoch"] > before["epoch"] and found,
            LEASE_S + 10,
            "the standby leading",
        )
        took = time.monotonic() - killed_at
        assert str(standby.process.pid) in after["id"]
        assert took <= LEASE_S + 3, f"takeover took {took:.1f}s"
        print(f"takeover {took:.1f}s after SIGKILL (lease {LEASE_S:g}s)")
        jobs += [submit(standby, "--cpus", "1", "--", *sleep) for _ in range(2)]

        def all_done() -> bool:
            found = stored_jobs(pg_store)
            return all(found[j]["state"] == "succeeded" for j in jobs)

        await eventually(all_done, 60, "every job succeeded")
        found = stored_jobs(pg_store)
        assert [found[j]["attempts"] for j in jobs] == [1] * len(jobs)  # each ran once
        for agent in fleet:
            agent.kill()
        for agent in fleet:

            def contiguous(node: str = agent.node) -> bool:
                seqs = stored_seqs(pg_store, node)
                return bool(seqs) and seqs == list(range(seqs[0], seqs[-1] + 1))

            await eventually(contiguous, 30, f"{agent.node}'s samples without a gap")
    finally:
        for agent in fleet:
            agent.kill()
        for process in (first, second, *ingest):
            process.kill()
    log = standby.log()
    assert "leading at epoch" in log


async def test_a_lone_coordinator_on_sqlite_leads(mosquitto, tmp_path):
    process = CoordinatorProcess(
        db_url=f"sqlite:///{tmp_path / 'd.db'}", broker=mosquitto.url, workdir=tmp_path
    )
    process.start()
    try:
        found = await eventually(lambda: leader(process), 20, "the leader row")
        assert found["id"].endswith(f":{process.process.pid}")
        assert abs(found["epoch"] - time.time()) < 60  # the takeover's time, in seconds
        table = process.run_cli("status").stdout
        assert f"epoch {found['epoch']}, since" in table
    finally:
        process.kill()


async def test_a_lone_process_leads_at_once_and_never_steps_down(tmp_path, caplog):
    engine = create_engine(f"sqlite:///{tmp_path / 'd.db'}")
    upgrade(engine)
    stopping = Stopping()
    leadership = Leadership(engine, SystemClock(), stopping, lease_s=0.3)
    assert leadership.leading.is_set()  # before any message is handled
    task = asyncio.create_task(leadership.run())
    await asyncio.sleep(1.0)  # several checks
    stopping.request()
    await asyncio.wait_for(task, 5)
    with engine.connect() as conn:
        found = leader_rows.current(conn)
    assert found is not None
    assert (found.holder, found.epoch) == (leadership.holder, leadership.epoch)
    assert found.renewed_at > found.since  # checked since
    assert leadership.leading.is_set()
    assert "no longer leading" not in caplog.text


@pytest.mark.pg
@pg_only
async def test_a_leader_that_hands_over_rests_while_the_standby_leads(db_url):
    """What a leader whose passes keep failing does: step down and stay a standby for its
    rest, while the other process takes the lock."""
    engine = create_engine(db_url)
    upgrade(engine)
    stopping = Stopping()
    a = Leadership(engine, SystemClock(), stopping, lease_s=0.5, holder="a")
    b = Leadership(engine, SystemClock(), stopping, lease_s=0.5, holder="b")
    first = asyncio.create_task(a.run())
    await asyncio.wait_for(a.leading.wait(), 5)
    second = asyncio.create_task(b.run())
    a.hand_over("3 passes in a row failed", 3.0)
    assert not a.leading.is_set()
    await asyncio.wait_for(b.leading.wait(), 5)
    await asyncio.sleep(1.0)
    assert not a.leading.is_set()  # resting: it does not contend
    with engine.connect() as conn:
        found = leader_rows.current(conn)
    assert found is not None
    assert found.holder == "b"
    stopping.request()
    await asyncio.wait_for(asyncio.gather(first, second), 5)
    engine.dispose()
