"""dormouse as Slurm's power brain, against a real Slurm (Debian's 22.05 slurmctld and slurmd
on loopback, see slurm_support), the coordinator in Slurm mode, real Mosquitto and dry-run
agents whose hosts' slurmd stops and starts as they sleep and wake.

Slurm's names are mapped to the agents' (`[slurm] node_map`): sn1 -> ...-a, sn2 -> ...-b.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import pytest

from tests.integration.coordinator_support import CoordinatorProcess
from tests.integration.slurm_support import Hosts, SlurmCluster, program_wrappers, require_slurm
from tests.integration.test_jobs import eventually
from tests.integration.test_power import dry_run_agent, free_udp_port

# PostgreSQL, the store a Slurm site runs (the programs Slurm runs write to it)
pytestmark = [
    pytest.mark.mqtt,
    pytest.mark.pg,
    pytest.mark.slurm,
    pytest.mark.parametrize("db_url", ["postgresql"], indirect=True),
]
SLURM_NAMES = ("sn1", "sn2")


@pytest.fixture
def names() -> dict[str, str]:
    stem = f"s-{uuid.uuid4().hex[:6]}"
    return {slurm: f"{stem}-{slurm}" for slurm in SLURM_NAMES}


def coordinator_for(db_url, mosquitto, tmp_path, wol_port, names, **env: str):
    return CoordinatorProcess(
        db_url=db_url,
        broker=mosquitto.url,
        workdir=tmp_path,
        extra_env={
            "SLURM_CONF": str(tmp_path / "slurm" / "slurm.conf"),  # for its scontrol
            "DORMOUSE_SLURM_ENABLED": "true",
            "DORMOUSE_SLURM_NODE_MAP": ",".join(f"{s}={d}" for s, d in names.items()),
            "DORMOUSE_SLURM_WATCH_EVERY": "1s",
            "DORMOUSE_SLURM_REWAKE_AFTER": "5s",
            "DORMOUSE_JOBS_SCHEDULE_INTERVAL": "0.3s",
            "DORMOUSE_POWER_CPU_IDLE_PCT": "100",
            "DORMOUSE_POWER_MIN_AWAKE_TIME": "1s",
            "DORMOUSE_POWER_MIN_ASLEEP_TIME": "1s",
            "DORMOUSE_POWER_MAX_SLEEPS_PER_MIN": "10",
            "DORMOUSE_POWER_RESUME_TIMEOUT": "60s",
            "DORMOUSE_POWER_WOL_BROADCAST": "127.255.255.255",
            "DORMOUSE_POWER_WOL_PORT": str(wol_port),
            **env,
        },
    )


@contextlib.asynccontextmanager
async def slurm_site(tmp_path, coordinator, mosquitto, wol_port, names, **cluster_options):
    """The coordinator, two agents, a Slurm whose programs are dormouse's, and the hosts."""
    require_slurm()
    coordinator.start()
    agents = [
        dry_run_agent(mosquitto, tmp_path, node, f"02:00:00:00:01:0{i + 1}", wol_port)
        for i, node in enumerate(names.values())
    ]
    programs = program_wrappers(tmp_path, coordinator.env())
    cluster = SlurmCluster(tmp_path / "slurm", list(names), programs, **cluster_options)
    hosts = Hosts(cluster, coordinator.db_url, names)
    stop = asyncio.Event()
    task = None
    try:
        for agent in agents:  # both known to dormouse before Slurm asks anything of them
            await eventually(lambda a=agent: node_state(coordinator, a.node) == "online", 20, "up")
        cluster.start()
        task = asyncio.create_task(hosts.run(stop))
        yield cluster, hosts
    finally:
        stop.set()
        if task is not None:
            await task
        cluster.stop()
        for agent in agents:
            agent.kill()
        coordinator.kill()


def node_state(coordinator, node: str) -> str | None:
    return {row["node"]: row["state"] for row in coordinator.cli("nodes")}.get(node)


def events(coordinator, node: str) -> list[dict]:
    return coordinator.cli("power-events", "--node", node)


def slurm_state(cluster: SlurmCluster, name: str) -> frozenset[str]:
    return cluster.show()[name].states


@pytest.mark.timeout(300)
async def test_slurm_decides_dormouse_sleeps_wakes_and_mends(db_url, mosquitto, tmp_path, names):
    """SuspendTime suspends idle nodes through dormouse; an sbatch job resumes one and runs;
    a host slower than ResumeTimeout is left DOWN by Slurm and returned to service by
    dormouse once its agent is back; a submission to dormouse is refused."""
    wol_port = free_udp_port()
    coordinator = coordinator_for(db_url, mosquitto, tmp_path, wol_port, names)
    a, b = names.values()
    async with slurm_site(tmp_path, coordinator, mosquitto, wol_port, names) as (cluster, hosts):
        await eventually(
            lambda: all("POWERED_DOWN" in slurm_state(cluster, s) for s in SLURM_NAMES),
            60,
            f"Slurm powered both down: {cluster.log()}",
        )
        await eventually(lambda: node_state(coordinator, a) == "asleep", 30, "a asleep")
        reasons = [e["reason"] for e in events(coordinator, a)]
        assert "slurm SuspendProgram (forced)" in reasons, reasons

        job = cluster.sbatch("sn1", "echo ran on $SLURMD_NODENAME")
        await eventually(
            lambda: cluster.job_state(job) == "COMPLETED", 60, f"job ran: {cluster.log()}"
        )
        assert "ran on sn1" in (cluster.root / f"job-{job}.out").read_text()
        kinds = [e["kind"] for e in events(coordinator, a)]
        assert "wake" in kinds, kinds
        assert "resumed" in kinds, kinds
        assert any(e["reason"].startswith("slurm ResumeProgram") for e in events(coordinator, a))

        # slurmctld checks ResumeTimeout only on its ping pass (every SlurmdTimeout / 3 s), so
        # the host comes back well past a whole ping interval after the timeout: a host back
        # earlier may register before the check and never be marked DOWN.
        hosts.late, hosts.late_s = {"sn2"}, cluster.resume_timeout + cluster.slurmd_timeout
        cluster.run("scontrol", "update", "NodeName=sn2", "State=POWER_UP")
        await eventually(
            lambda: "DOWN" in slurm_state(cluster, "sn2"), 90, f"sn2 DOWN: {cluster.log()}"
        )
        await eventually(
            lambda: slurm_state(cluster, "sn2") == frozenset({"IDLE"}),
            90,
            f"sn2 back in service: {cluster.show()['sn2']} {events(coordinator, b)}"
            f" {hosts.errors} {cluster.log()}",
        )
        mended = [e for e in events(coordinator, b) if e["kind"] == "slurm_resume"]
        assert mended, events(coordinator, b)
        assert "its agent is back" in mended[0]["reason"]

        refused = coordinator.run_cli("submit", "--cpus", "1", "--", "true")
        assert refused.returncode != 0
        assert "Slurm mode" in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1


@pytest.mark.timeout(240)
async def test_dormouse_decides_powers_down_through_scontrol(db_url, mosquitto, tmp_path, names):
    """`decides = "dormouse"`: Slurm's own timer is a week away; dormouse's idle policy asks
    Slurm for POWER_DOWN, and Slurm's SuspendProgram (dormouse's) puts the node to sleep."""
    wol_port = free_udp_port()
    coordinator = coordinator_for(
        db_url,
        mosquitto,
        tmp_path,
        wol_port,
        names,
        DORMOUSE_SLURM_DECIDES="dormouse",
        DORMOUSE_POWER_SLEEP_IDLE="true",
        DORMOUSE_POWER_IDLE_AFTER="2s",
        DORMOUSE_POWER_NEVER_SLEEP=names["sn2"],
    )
    a, b = names.values()
    site = slurm_site(tmp_path, coordinator, mosquitto, wol_port, names, suspend_time="604800")
    async with site as (cluster, _):
        await eventually(
            lambda: "POWERED_DOWN" in slurm_state(cluster, "sn1"), 60, f"sn1 down: {cluster.log()}"
        )
        await eventually(lambda: node_state(coordinator, a) == "asleep", 30, "a asleep")
        kinds = [e["kind"] for e in events(coordinator, a)]
        asked = kinds.index("slurm_ask")
        assert "sleep" in kinds[asked:], kinds  # Slurm's SuspendProgram came after the ask
        ask = next(e for e in events(coordinator, a) if e["kind"] == "slurm_ask")
        assert "POWER_DOWN" in ask["reason"]
        assert slurm_state(cluster, "sn2") == frozenset({"IDLE"})  # never_sleep: not asked
        assert node_state(coordinator, b) == "online"
