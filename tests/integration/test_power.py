"""Power end to end: real Mosquitto, the coordinator and three `dry-run` agents (each leaves
the broker and waits for a Wake-on-LAN packet on loopback), SQLite and PostgreSQL."""

from __future__ import annotations

import json
import socket
import sys
import uuid

import aiomqtt
import pytest

from shared.codec import decode
from shared.messages import Status
from shared.topics import Kind, topic
from tests.integration.agent_support import AgentProcess
from tests.integration.coordinator_support import CoordinatorProcess, stored_jobs
from tests.integration.test_jobs import eventually, submit

pytestmark = pytest.mark.mqtt
PY = sys.executable


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def wol_port() -> int:
    return free_udp_port()


@pytest.fixture
def names() -> list[str]:
    """a, b, c in placement's name order (b is woken before c)."""
    stem = f"p-{uuid.uuid4().hex[:8]}"
    return [f"{stem}-a", f"{stem}-b", f"{stem}-c"]


@pytest.fixture
def never_sleep(names) -> list[str]:
    return names[:1]


@pytest.fixture
def coordinator(db_url, mosquitto, tmp_path, wol_port, never_sleep):
    process = CoordinatorProcess(
        db_url=db_url,
        broker=mosquitto.url,
        workdir=tmp_path,
        extra_env={
            "DORMOUSE_JOBS_SCHEDULE_INTERVAL": "0.2s",
            "DORMOUSE_POWER_SLEEP_IDLE": "true",
            "DORMOUSE_POWER_IDLE_AFTER": "2s",
            "DORMOUSE_POWER_CPU_IDLE_PCT": "100",  # agents share this busy host: its CPU
            "DORMOUSE_POWER_MIN_AWAKE_TIME": "1s",
            "DORMOUSE_POWER_MIN_ASLEEP_TIME": "1s",
            "DORMOUSE_POWER_MAX_SLEEPS_PER_MIN": "10",
            "DORMOUSE_POWER_RESUME_TIMEOUT": "6s",
            "DORMOUSE_POWER_RESUME_TIMEOUT_FLOOR": "6s",  # once wakes here are measured
            "DORMOUSE_POWER_FIRST_WAKE_TIMEOUT": "0s",  # the fixed 6 s for unmeasured nodes
            "DORMOUSE_POWER_NEVER_SLEEP": ",".join(never_sleep),
            "DORMOUSE_POWER_WOL_BROADCAST": "127.255.255.255",
            "DORMOUSE_POWER_WOL_PORT": str(wol_port),
        },
    )
    process.start()
    yield process
    process.kill()


def dry_run_agent(mosquitto, tmp_path, node: str, mac: str, listen_port: int) -> AgentProcess:
    (tmp_path / node).mkdir()
    agent = AgentProcess(
        node=node,
        broker=mosquitto.url,
        interval="0.2s",
        spool_dir=tmp_path / node / "spool",
        key_file=tmp_path / "key",
        extra_env={
            "DORMOUSE_OFFER_CPUS": "2",
            "DORMOUSE_OFFER_MEM": "4G",
            "DORMOUSE_SLEEP_METHOD": "dry-run",
            "DORMOUSE_WAKE_METHODS": "wol",
            "DORMOUSE_MACS": mac,
            "DORMOUSE_WOL_LISTEN_PORT": str(listen_port),
            "DORMOUSE_DRY_RUN_MAX": "10m",
        },
    )
    agent.start()
    return agent


@pytest.fixture
def fleet(mosquitto, tmp_path, names, wol_port, request):
    """Three dry-run agents; `b` listens on the wrong port when the test asks (never wakes)."""
    broken = getattr(request, "param", False)
    ports = [wol_port, free_udp_port() if broken else wol_port, wol_port]
    agents = [
        dry_run_agent(mosquitto, tmp_path, name, f"02:00:00:00:00:0{i + 1}", port)
        for i, (name, port) in enumerate(zip(names, ports, strict=True))
    ]
    yield agents
    for agent in agents:
        agent.kill()


def states(coordinator) -> dict[str, str]:
    return {row["node"]: row["state"] for row in coordinator.cli("nodes")}


async def retained_status(broker, node: str) -> str:
    async with aiomqtt.Client(broker.host, broker.port) as client:
        await client.subscribe(topic(node, Kind.STATUS), qos=1)
        async for message in client.messages:
            status = decode(message.payload, Kind.STATUS, node)
            assert isinstance(status, Status)
            return status.state
    raise AssertionError("no retained status")


def power_kinds(coordinator, node: str) -> list[str]:
    return [e["kind"] for e in coordinator.cli("power-events", "--node", node)]


async def all_but_a_asleep(coordinator, names) -> None:
    def asleep() -> bool:
        seen = states(coordinator)
        return seen.get(names[0]) == "online" and all(seen.get(n) == "asleep" for n in names[1:])

    await eventually(asleep, 40, "b and c asleep, a (never_sleep) online")


async def test_idle_nodes_sleep_and_a_job_wakes_one_by_wake_on_lan(
    coordinator, fleet, names, mosquitto
):
    a, b, c = names
    await all_but_a_asleep(coordinator, names)
    for node in (b, c):  # gone from the broker as a suspended host is, but asleep, not offline
        assert await retained_status(mosquitto.url, node) == "offline"
        assert power_kinds(coordinator, node)[:3] == ["sleep", "sleep_ack", "asleep"]
    blocker = submit(
        coordinator, "--cpus", "2", "--runtime", "30s", "--", PY, "-c", "import time; time.sleep(8)"
    )
    await eventually(
        lambda: stored_jobs(coordinator.db_url)[blocker]["state"] == "running",
        20,
        "the blocker running on a",
    )
    assert stored_jobs(coordinator.db_url)[blocker]["node"] == a
    woken = submit(coordinator, "--cpus", "2", "--runtime", "30s", "--", PY, "-c", "pass")
    await eventually(
        lambda: stored_jobs(coordinator.db_url)[woken]["state"] == "succeeded",
        40,
        "the second job run on a woken node",
    )
    ran_on = stored_jobs(coordinator.db_url)[woken]["node"]
    assert ran_on in {b, c}  # placement's choice among equal sleepers (utilisation, then name)
    other = c if ran_on == b else b
    agent, mac = (fleet[1], "02:00:00:00:00:02") if ran_on == b else (fleet[2], "02:00:00:00:00:03")
    kinds = power_kinds(coordinator, ran_on)
    assert kinds[kinds.index("wake") :][:2] == ["wake", "resumed"]
    events = coordinator.cli("power-events", "--node", ran_on)
    wake = next(e for e in events if e["kind"] == "wake")
    assert f"Wake-on-LAN to {mac}" in wake["reason"]
    assert f"Wake-on-LAN packet for {mac}" in agent.log()
    assert states(coordinator)[other] == "asleep"  # one wake was enough
    resumed = next(e for e in events if e["kind"] == "resumed")
    assert "after the wake" in resumed["reason"]  # a measured resume latency


async def test_operator_sleep_and_wake(coordinator, fleet, names):
    a = names[0]
    await all_but_a_asleep(coordinator, names)
    refused = coordinator.run_cli("sleep", a)
    assert refused.returncode == 3
    assert "never_sleep" in refused.stderr
    forced = coordinator.run_cli("sleep", a, "--force")
    assert forced.returncode == 0, forced.stderr
    assert "done: the agent is going to sleep" in forced.stdout
    await eventually(lambda: states(coordinator)[a] == "asleep", 20, "a asleep")
    again = coordinator.run_cli("sleep", a)
    assert again.returncode == 3
    assert "not online" in again.stderr
    woken = coordinator.run_cli("wake", a)
    assert woken.returncode == 0, woken.stderr
    await eventually(lambda: states(coordinator)[a] == "online", 20, "a back")
    busy = submit(coordinator, "--cpus", "1", "--", PY, "-c", "import time; time.sleep(20)")
    await eventually(
        lambda: stored_jobs(coordinator.db_url)[busy]["state"] == "running", 20, "a job on a"
    )
    sent = coordinator.run_cli("sleep", a, "--force")  # the policy is skipped, not the agent
    assert sent.returncode == 3, sent.stdout
    assert "refused by the agent" in sent.stderr
    assert "sleep_refused" in power_kinds(coordinator, a)
    asked = [
        e["reason"]
        for e in coordinator.cli("power-events", "--node", a)
        if e["kind"] == "request_sleep"
    ]
    assert any(r.startswith("refused by the agent") for r in asked), asked  # not "done"
    assert not [r for r in asked if r == "done"], asked
    assert states(coordinator)[a] == "online"
    assert stored_jobs(coordinator.db_url)[busy]["state"] == "running"
    assert coordinator.run_cli("wake", "no-such-node").returncode == 2


async def test_slurms_programs_sleep_and_wake_through_the_agents(coordinator, fleet, names):
    """`dormouse slurm suspend|resume` as slurm.conf runs them: recorded at once, carried
    out by the leader through the agent, the program named as the reason."""
    a = names[0]
    await all_but_a_asleep(coordinator, names)
    suspended = coordinator.run_cli("slurm", "suspend", f"{a},not-a-node")
    assert suspended.returncode == 0, suspended.stderr
    assert f"recorded 1 ({a}); not dormouse nodes: not-a-node" in suspended.stderr
    await eventually(lambda: states(coordinator)[a] == "asleep", 20, "a asleep")
    reasons = [e["reason"] for e in coordinator.cli("power-events", "--node", a)]
    assert "slurm SuspendProgram (forced)" in reasons, reasons
    resumed = coordinator.run_cli("slurm", "resume", a)
    assert resumed.returncode == 0, resumed.stderr
    await eventually(lambda: states(coordinator)[a] == "online", 20, "a back")
    logged = (coordinator.workdir / "slurm.log").read_text().splitlines()
    assert [line.split(" ", 2)[1] for line in logged] == ["suspend", "resume"]


@pytest.mark.parametrize("fleet", [True], indirect=True)
class TestNeverWakes:
    """a and c stay awake and busy; b, woken for a job, never hears its magic packet."""

    @pytest.fixture
    def never_sleep(self, names) -> list[str]:
        return [names[0], names[2]]

    async def test_it_fails_and_its_job_runs_elsewhere(self, coordinator, fleet, names):
        a, b, c = names

        def b_asleep() -> bool:
            seen = states(coordinator)
            return seen.get(b) == "asleep" and seen.get(a) == seen.get(c) == "online"

        await eventually(b_asleep, 40, "b asleep, a and c online")
        blockers = [
            submit(
                coordinator,
                "--cpus",
                "2",
                "--runtime",
                "60s",
                "--",
                PY,
                "-c",
                "import time; time.sleep(15)",
            )
            for _ in range(2)
        ]
        await eventually(
            lambda: all(stored_jobs(coordinator.db_url)[j]["state"] == "running" for j in blockers),
            20,
            "a and c busy",
        )
        moved = submit(coordinator, "--cpus", "2", "--runtime", "30s", "--", PY, "-c", "pass")
        await eventually(lambda: states(coordinator)[b] == "failed", 30, "b failed to resume")
        assert power_kinds(coordinator, b)[-2:] == ["wake", "failed"]
        failed = coordinator.cli("power-events", "--node", b)[-1]
        assert "timeout 6s: resume_timeout" in failed["reason"]  # no wake measured here yet
        await eventually(
            lambda: stored_jobs(coordinator.db_url)[moved]["state"] == "succeeded",
            40,
            "the job run on a or c once free",
        )
        assert stored_jobs(coordinator.db_url)[moved]["node"] in {a, c}
        refused = coordinator.run_cli("wake", b)
        assert refused.returncode == 3
        assert "dormouse clear" in refused.stderr
        cleared = coordinator.run_cli("clear", b)
        assert cleared.returncode == 0, cleared.stderr
        # answered by the power pass; the node row follows within a housekeeping second
        await eventually(lambda: states(coordinator)[b] == "asleep", 5, "b's row asleep")


async def test_job_output_is_read_from_its_node_and_kept_while_it_sleeps(coordinator, fleet, names):
    """`dormouse jobs logs`: live from the node while the job runs (and `--follow` to its
    end); with the node asleep, the end kept from its end event, said to be only that; with
    `--wake`, the node woken and the output read there."""
    a = names[0]
    await all_but_a_asleep(coordinator, names)
    script = (
        "import time\nfor i in range(6):\n    print(f'line {i}', flush=True)\n    time.sleep(0.5)"
    )
    job = submit(coordinator, "--cpus", "1", "--", PY, "-c", script)
    await eventually(
        lambda: "line 0" in coordinator.run_cli("jobs", "logs", job).stdout, 30, "a line, live"
    )
    followed = coordinator.run_cli("jobs", "logs", job, "--follow")
    assert followed.returncode == 0, followed.stderr
    assert followed.stdout.splitlines() == [f"line {i}" for i in range(6)]
    assert stored_jobs(coordinator.db_url)[job]["state"] == "succeeded"
    answer = json.loads(coordinator.run_cli("jobs", "logs", job, "--json").stdout)
    piece = answer["live"]  # beside what the coordinator kept from the end event
    assert (piece["node"], piece["offset"], piece["next"]) == (a, 0, piece["size"])
    assert answer["stdout"] == piece["output"]

    assert coordinator.run_cli("sleep", a, "--force").returncode == 0
    await eventually(lambda: states(coordinator)[a] == "asleep", 20, "a asleep")
    kept = coordinator.run_cli("jobs", "logs", job, "--tail", "1")
    assert kept.returncode == 0, kept.stderr
    assert kept.stdout == "line 5\n"
    assert f"{a} is asleep: this is the last 4 KiB kept" in kept.stderr
    woken = coordinator.run_cli("jobs", "logs", job, "--wake", "--tail", "2")
    assert woken.returncode == 0, woken.stderr
    assert woken.stdout.splitlines() == ["line 4", "line 5"]
    assert f"waking {a}" in woken.stderr
    missing = coordinator.run_cli("jobs", "logs", job, "--stderr")
    assert missing.returncode == 0  # an empty stderr, read from the node
    assert missing.stdout == ""
