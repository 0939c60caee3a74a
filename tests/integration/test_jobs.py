"""Jobs end to end: real Mosquitto, the coordinator, agent processes, both databases."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections import defaultdict

import pytest

from tests.integration.agent_support import KEY, AgentProcess, unique_node
from tests.integration.coordinator_support import CoordinatorProcess, stored_jobs

pytestmark = pytest.mark.mqtt
PY = sys.executable
JOB_SETTINGS = {
    "DORMOUSE_JOBS_SCHEDULE_INTERVAL": "0.2s",
    "DORMOUSE_JOBS_LOST_AFTER": "3s",
    "DORMOUSE_JOBS_DISPATCH_RETRY": "2s",
    "DORMOUSE_JOBS_CANCEL_GRACE": "2s",
}


@pytest.fixture
def coordinator(db_url, mosquitto, tmp_path):
    process = CoordinatorProcess(
        db_url=db_url, broker=mosquitto.url, workdir=tmp_path, extra_env=JOB_SETTINGS
    )
    process.start()
    yield process
    process.kill()


def start_agents(mosquitto, tmp_path, cpus: list[int]) -> list[AgentProcess]:
    return [start_agent(mosquitto, tmp_path, offered) for offered in cpus]


def start_agent(mosquitto, tmp_path, cpus: int, key: str | None = KEY) -> AgentProcess:
    """An agent offering `cpus`: with the coordinator's key, or its own key file holding
    `key` (None: no key file at all)."""
    node = unique_node()
    (tmp_path / node).mkdir()
    agent = AgentProcess(
        node=node,
        broker=mosquitto.url,
        interval="0.2s",
        spool_dir=tmp_path / node / "spool",
        key_file=tmp_path / "key" if key == KEY else tmp_path / node / "command.key",
        key=key,
        extra_env={"DORMOUSE_OFFER_CPUS": str(cpus), "DORMOUSE_OFFER_MEM": "8G"},
    )
    agent.start()
    return agent


async def eventually(check, timeout_s: float, what: str):
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        value = await asyncio.to_thread(check)
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g}s waiting for {what}")
        await asyncio.sleep(0.3)


async def online(coordinator, fleet) -> None:
    names = {a.node for a in fleet}

    def ready() -> bool:
        rows = coordinator.cli("nodes")
        return {r["node"] for r in rows if r["state"] == "online"} >= names

    await eventually(ready, 30, "every agent online")


def submit(coordinator, *args: str) -> str:
    return coordinator.cli("submit", *args)["id"]


def job(coordinator, job_id: str) -> dict:
    return stored_jobs(coordinator.db_url).get(job_id, {"state": None})


def in_state(coordinator, job_id: str, *states: str):
    def check():
        record = job(coordinator, job_id)
        return record if record["state"] in states else None

    return check


def stop(fleet) -> None:
    for agent in fleet:
        agent.kill(signal.SIGTERM)


async def submit_many(coordinator, commands: list[list[str]]) -> list[str]:
    """Submit through the CLI, four at a time (each is a process)."""
    gate = asyncio.Semaphore(4)

    async def one(args: list[str]) -> str:
        async with gate:
            return await asyncio.to_thread(submit, coordinator, *args)

    return await asyncio.gather(*(one(a) for a in commands))


def when_all(coordinator, ids, states):
    def check():
        rows = stored_jobs(coordinator.db_url)
        return rows if all(rows[i]["state"] in states for i in ids) else None

    return check


def peak_cpus(rows: list[dict]) -> int:
    """Most CPUs of jobs at once, from the agents' own start and finish times."""
    edges = [(r["started_at"], r["cpus"]) for r in rows]
    edges += [(r["finished_at"], -r["cpus"]) for r in rows]
    in_use = peak = 0
    for _, delta in sorted(edges):  # at equal times the end (negative) counts first
        in_use += delta
        peak = max(peak, in_use)
    return peak


async def test_thirty_mixed_jobs_run_within_capacity_spread_by_least_connections(
    coordinator, mosquitto, tmp_path
):
    offered = [1, 2, 4]
    fleet = start_agents(mosquitto, tmp_path, offered)
    try:
        await online(coordinator, fleet)
        commands = [
            [
                "--cpus", str(1 + i % 2), "--mem", "1G", "--runtime", "5s",
                "--deadline", "10m" if i % 3 else "20m", "--name", f"j{i}",
                "--", PY, "-c", f"import time; time.sleep({0.2 + (i % 5) * 0.15})",
            ]
            for i in range(30)
        ]  # fmt: skip
        ids = await submit_many(coordinator, commands)
        ended = {"succeeded", "failed", "cancelled", "lost"}
        rows = await eventually(when_all(coordinator, ids, ended), 120, "30 jobs to end")
        assert {rows[i]["state"] for i in ids} == {"succeeded"}, rows
        assert all(rows[i]["deadline_met"] for i in ids)
        listed = {r["id"] for r in coordinator.cli("jobs", "--state", "succeeded")}
        assert listed == set(ids)
        for agent, cpus in zip(fleet, offered, strict=True):
            mine = [rows[i] for i in ids if rows[i]["node"] == agent.node]
            assert mine, f"{agent.node} took no work"
            assert peak_cpus(mine) <= cpus, f"{agent.node} ran more than its {cpus} cpus"
    finally:
        stop(fleet)


async def test_equal_nodes_share_equal_jobs_by_least_connections(coordinator, mosquitto, tmp_path):
    fleet = start_agents(mosquitto, tmp_path, [4, 4, 4])
    try:
        await online(coordinator, fleet)
        script = "import time; time.sleep(20)"
        command = ["--cpus", "1", "--runtime", "1m", "--", PY, "-c", script]
        ids = await submit_many(coordinator, [command] * 6)
        rows = await eventually(when_all(coordinator, ids, {"running"}), 30, "six running")
        per_node = defaultdict(int)
        for i in ids:
            per_node[rows[i]["node"]] += 1
        assert sorted(per_node.values()) == [2, 2, 2]
        assert coordinator.cli("pick")["connections"] == 2
    finally:
        stop(fleet)


async def test_cancel_and_runtime_limit_kill(coordinator, mosquitto, tmp_path):
    fleet = start_agents(mosquitto, tmp_path, [2])
    try:
        await online(coordinator, fleet)
        long = submit(
            coordinator, "--runtime", "10m", "--", PY, "-c", "import time; time.sleep(120)"
        )
        await eventually(in_state(coordinator, long, "running"), 30, "running")
        result = coordinator.run_cli("cancel", long)
        assert result.returncode == 0, result.stderr
        ended = await eventually(in_state(coordinator, long, "cancelled"), 30, "cancelled")
        assert ended["exit_code"] == -15

        over = submit(
            coordinator, "--runtime", "1s", "--", PY, "-c", "import time; time.sleep(120)"
        )
        killed = await eventually(in_state(coordinator, over, "failed"), 30, "killed at the limit")
        assert killed["detail"] == "killed: past its runtime limit of 2s"  # 1s x factor 2
        assert killed["exit_code"] == -15

        queued = submit(coordinator, "--cpus", "2", "--runtime", "1m", "--", "true")
        blocker = submit(
            coordinator,
            "--cpus",
            "2",
            "--runtime",
            "1m",
            "--",
            PY,
            "-c",
            "import time; time.sleep(120)",
        )
        await eventually(
            lambda: (
                {job(coordinator, i)["state"] for i in (queued, blocker)} >= {"succeeded"}
                or job(coordinator, blocker)["state"] == "running"
            ),
            30,
            "one of them running",
        )
        coordinator.run_cli("cancel", blocker)
        await eventually(in_state(coordinator, blocker, "cancelled"), 30, "blocker cancelled")
        await eventually(in_state(coordinator, queued, "succeeded"), 30, "queued one ran")
    finally:
        stop(fleet)


async def test_agent_restart_during_a_job(coordinator, mosquitto, tmp_path):
    (agent,) = start_agents(mosquitto, tmp_path, [2])
    try:
        await online(coordinator, [agent])
        job_id = submit(
            coordinator, "--runtime", "1m", "--", PY, "-c", "import time; time.sleep(4)"
        )
        await eventually(in_state(coordinator, job_id, "running"), 30, "running")
        agent.kill(signal.SIGKILL)
        agent.start()
        ended = await eventually(
            in_state(coordinator, job_id, "succeeded", "failed", "lost"), 40, "end"
        )
        assert (ended["state"], ended["exit_code"]) == ("succeeded", 0)
        assert "recovered job" in agent.log()
    finally:
        agent.kill(signal.SIGTERM)


async def test_coordinator_restart_during_a_job(coordinator, mosquitto, tmp_path):
    (agent,) = start_agents(mosquitto, tmp_path, [2])
    try:
        await online(coordinator, [agent])
        job_id = submit(
            coordinator, "--runtime", "1m", "--", PY, "-c", "import time; time.sleep(3)"
        )
        await eventually(in_state(coordinator, job_id, "running"), 30, "running")
        coordinator.kill(signal.SIGKILL)
        await asyncio.sleep(4)  # the job ends while no coordinator listens
        coordinator.start()
        ended = await eventually(in_state(coordinator, job_id, "succeeded", "failed"), 30, "end")
        assert ended["state"] == "succeeded"
    finally:
        agent.kill(signal.SIGTERM)


async def test_a_job_on_a_node_that_stays_offline_is_lost_or_requeued(
    coordinator, mosquitto, tmp_path
):
    (doomed,) = start_agents(mosquitto, tmp_path, [4])
    fleet = [doomed]
    try:
        await online(coordinator, fleet)
        plain = submit(
            coordinator, "--runtime", "1m", "--", PY, "-c", "import time; time.sleep(60)"
        )
        slow_on_doomed = (  # long where it is lost, short where it runs again
            "import os, time;"
            f"time.sleep(60 if {doomed.node!r} in os.environ['DORMOUSE_JOB_DIR'] else 1)"
        )
        again = submit(coordinator, "--requeue", "--runtime", "1m", "--", PY, "-c", slow_on_doomed)
        await eventually(when_all(coordinator, [plain, again], {"running"}), 30, "both running")
        fleet += start_agents(mosquitto, tmp_path, [1])
        await online(coordinator, fleet)
        doomed.kill(signal.SIGKILL)  # gone for good: its Last Will says offline
        lost = await eventually(in_state(coordinator, plain, "lost"), 40, "lost")
        assert "offline" in lost["detail"]
        rerun = await eventually(in_state(coordinator, again, "succeeded"), 40, "run again")
        assert (rerun["node"], rerun["attempts"]) == (fleet[1].node, 2)
        kinds = [e["kind"] for e in coordinator.cli("job", again)["events"]]
        assert kinds == [
            "submitted",
            "placed",
            "started",
            "requeued",
            "placed",
            "started",
            "succeeded",
        ]
    finally:
        stop(fleet)


async def test_submit_refuses_what_no_node_could_ever_run(coordinator, mosquitto, tmp_path):
    fleet = start_agents(mosquitto, tmp_path, [2])
    try:
        await online(coordinator, fleet)
        result = coordinator.run_cli("submit", "--gpus", "4", "--", "true")
        assert result.returncode == 2
        assert "no node in the fleet could ever run it (gpus on 1 node)" in result.stderr
        assert coordinator.cli("jobs") == []  # nothing was queued
        result = coordinator.run_cli("pick", "--label", "zone=nowhere")
        assert result.returncode == 3
        assert "could ever take" in result.stderr
    finally:
        stop(fleet)


async def test_agents_that_cannot_verify_commands_get_no_job_and_say_why(
    coordinator, mosquitto, tmp_path
):
    """A keyless agent and one with another key say so in their hellos (as a key id): the
    coordinator places every job on the agent with its key, shows the other two as unable
    to verify, and says so once in its log; a job only they could take waits and says why."""
    keyless = start_agent(mosquitto, tmp_path, 4, key=None)
    other = start_agent(mosquitto, tmp_path, 4, key="o" * 32)
    fleet = [keyless, other]
    try:
        await online(coordinator, fleet)
        nodes = {r["node"]: r for r in coordinator.cli("nodes")}
        assert nodes[keyless.node]["commands"] == "no key"
        assert nodes[other.node]["commands"] == "other key"
        stuck = submit(coordinator, "--runtime", "1m", "--", "true")
        await asyncio.sleep(1.5)  # several placement passes
        shown = coordinator.cli("job", stuck)
        assert shown["job"]["state"] == "pending", shown
        assert shown["job"]["waiting"] == "no node can take it now (2 command key)"
        fleet += start_agents(mosquitto, tmp_path, [4])
        good = fleet[-1].node
        await online(coordinator, fleet)
        short = ["--runtime", "30s", "--", PY, "-c", "import time; time.sleep(0.2)"]
        ids = [stuck, *await submit_many(coordinator, [short] * 5)]
        rows = await eventually(when_all(coordinator, ids, {"succeeded"}), 60, "six succeeded")
        assert {rows[i]["node"] for i in ids} == {good}
        log = coordinator.log()
        for agent in (keyless, other):
            said = f"placing nothing on {agent.node}: its agent cannot verify commands"
            assert log.count(said) == 1, log[-3000:]
        assert "(no key:" in log
        assert "(other key:" in log
        human = coordinator.run_cli("nodes")
        assert "no command key" in human.stdout
        assert "other command key" in human.stdout
    finally:
        stop(fleet)


async def test_the_end_of_a_jobs_output_is_kept_when_it_ends(coordinator, mosquitto, tmp_path):
    """A job writes 10,000 lines: its end event carries the last 4 KiB of stdout and of
    stderr, which the coordinator keeps (`dormouse jobs logs`, the API): readable however
    the node is now. Before it ends, the command reads it from the node."""
    fleet = start_agents(mosquitto, tmp_path, [2])
    try:
        await online(coordinator, fleet)
        script = (
            "import sys, time\n"
            "for i in range(10000): print(f'line {i}')\n"
            "print('oops: the end', file=sys.stderr)\n"
            "time.sleep(2)\n"
        )
        job_id = submit(coordinator, "--runtime", "1m", "--", PY, "-c", script)
        await eventually(in_state(coordinator, job_id, "running"), 30, "running")
        early = coordinator.run_cli("jobs", "logs", job_id)
        assert early.returncode == 0, early.stderr
        assert early.stdout.startswith("line ")  # live, from the node (docs/jobs.md)
        await eventually(in_state(coordinator, job_id, "succeeded"), 30, "succeeded")
        answer = coordinator.run_cli("jobs", "logs", job_id, "--json")
        assert answer.returncode == 0, answer.stderr
        kept = json.loads(answer.stdout)
        assert kept["stdout"].endswith("line 9999\n")
        assert 4000 < len(kept["stdout"]) <= 4096
        assert kept["stderr"] == "oops: the end\n"
        assert (kept["state"], kept["node"]) == ("succeeded", fleet[0].node)
        last = coordinator.run_cli("jobs", "logs", job_id, "--tail", "2")
        assert last.stdout.splitlines() == ["line 9998", "line 9999"]
        err = coordinator.run_cli("jobs", "logs", job_id, "--stderr")
        assert err.stdout.strip() == "oops: the end"
    finally:
        stop(fleet)
