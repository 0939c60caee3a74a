"""`dormouse demo`: a whole fleet on one machine, with nothing installed but Python.

An in-process MQTT broker (amqtt, a real broker), the coordinator on a SQLite file in the
working directory, one real agent for this host and a few simulated agents (dry-run sleep:
they leave the broker and wait for a Wake-on-LAN packet on loopback), a few jobs with
deadlines, and a live table while idle nodes fall asleep and jobs wake them. On the way
out (the duration, Ctrl-C or SIGTERM) every process it started is stopped by its process
group (the agents it spawned, then the jobs they left, from the ids their job directories
record), and a summary is printed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import psutil
import sqlalchemy as sa

from coordinator.cli.demo_view import Show
from coordinator.core.jobstate import JobRecord, JobState
from coordinator.core.registry import NodeView
from coordinator.daemon.coordinator import Coordinator
from coordinator.daemon.demo_broker import start_broker
from coordinator.daemon.main import build, http_server, load_key, run_with_http
from coordinator.services import jobs as jobs_service
from coordinator.services import report as report_service
from coordinator.services import tokens as token_service
from coordinator.services.store import open_store
from coordinator.settings import CoordinatorConfig
from shared import jobfiles
from shared.config import parse_broker_url
from shared.edge.host import default_node_name

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, slots=True)
class Plan:
    workdir: Path
    duration_s: float
    simulated: int

    @property
    def idle_after_s(self) -> float:
        """Short demos need short timers to show a sleep and a wake."""
        return min(10.0, max(2.0, self.duration_s / 8))


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def settings(plan: Plan, port: int, wol_port: int, host_node: str) -> CoordinatorConfig:
    base = CoordinatorConfig()
    return dataclasses.replace(
        base,
        broker=parse_broker_url(f"mqtt://127.0.0.1:{port}"),
        client_id="dormouse-demo-coordinator",
        receive_maximum=0,  # amqtt speaks MQTT 3.1.1 only
        http=dataclasses.replace(base.http, listen=f"127.0.0.1:{free_port()}"),
        db=f"sqlite:///{plan.workdir / 'dormouse.db'}",
        data_dir=plan.workdir,
        command_key_file=plan.workdir / "command.key",
        offline_after=max(6.0, plan.idle_after_s * 2),
        flush_interval=0.5,
        jobs=dataclasses.replace(base.jobs, schedule_interval=0.5, dispatch_retry=5.0),
        power=dataclasses.replace(
            base.power,
            sleep_idle=True,
            idle_after=plan.idle_after_s,
            min_awake_time=1.0,
            min_asleep_time=1.0,
            max_sleeps_per_min=30,
            resume_timeout=30.0,
            resume_timeout_floor=10.0,
            first_wake_timeout=0.0,  # the demo's 30 s from the first wake
            resume_latency=2.0,
            never_sleep=frozenset({host_node}),
            wol_broadcast="127.255.255.255",
            wol_port=wol_port,
        ),
    )


def start_agent(
    plan: Plan, config: CoordinatorConfig, node: str, extra: dict[str, str]
) -> subprocess.Popen[bytes]:
    home = plan.workdir / node
    home.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DORMOUSE_")}
    env |= {
        "DORMOUSE_COMMAND_KEY_FILE": str(config.command_key_file),
        "DORMOUSE_JOBS_DIR": str(home / "jobs"),
        "DORMOUSE_LOG_LEVEL": "warning",
        "DORMOUSE_SLEEP_METHOD": "dry-run",  # the demo never suspends this machine
        "DORMOUSE_WOL_LISTEN_PORT": str(config.power.wol_port),
        **extra,
    }
    argv = [
        sys.executable,
        "-m",
        "agent",
        "run",
        "--node",
        node,
        "--broker",
        str(config.broker),
        "--interval",
        "1s",
        "--publish-interval",
        "1s",
        "--spool-dir",
        str(home / "spool"),
    ]
    with (plan.workdir / f"{node}.log").open("ab") as out:
        return subprocess.Popen(  # noqa: S603 - our own agent, argv without a shell
            argv, env=env, stdout=out, stderr=out, start_new_session=True
        )


def job(command: str, cpus: int, runtime_s: float, deadline_in_s: float, name: str) -> JobRecord:
    now = time.time()
    return JobRecord(
        id=jobs_service.new_job_id(),
        argv=(sys.executable, "-c", command),
        submitted_at=now,
        name=name,
        cpus=cpus,
        mem_bytes=2**28,
        runtime_s=runtime_s,
        deadline=now + deadline_in_s,
    )


async def submit_jobs(engine: sa.Engine, plan: Plan, stop: asyncio.Event) -> None:
    """A few small jobs once the agents are up, then bigger ones that need sleeping nodes."""
    work = max(2.0, plan.duration_s / 10)
    waves = [
        (min(4.0, plan.duration_s / 4), [("small", 1)] * 2),
        (plan.duration_s * 0.45, [("wide", 2)] * (plan.simulated + 1)),
    ]
    started = time.monotonic()
    for at, jobs in waves:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), max(0.0, at - (time.monotonic() - started)))
        if stop.is_set():
            return
        for name, cpus in jobs:
            record = job(f"import time; time.sleep({work})", cpus, work * 2, plan.duration_s, name)
            with contextlib.suppress(jobs_service.JobError):
                await asyncio.to_thread(jobs_service.submit, engine, record, time.time())


def job_groups(workdir: Path, since: float) -> list[int]:
    """The process groups of jobs our agents started and have not finished: each job's
    wrapper and the job lead their own (the agent records both ids in the job's directory).
    An id is only taken if that process started after `since`, so a reused one is left."""
    groups = []
    for directory in workdir.glob("*/jobs/*"):
        if (directory / jobfiles.RESULT).exists():
            continue
        for name in (jobfiles.WRAPPER_PID, jobfiles.PID):
            with contextlib.suppress(OSError, ValueError, psutil.Error):
                pid = int((directory / name).read_text())
                if psutil.Process(pid).create_time() >= since:
                    groups.append(pid)
    return groups


async def stop_all(agents: list[subprocess.Popen[bytes]], workdir: Path, since: float) -> None:
    """Only what the demo started: each agent's process group (TERM, then KILL after 15 s),
    then the groups of jobs they left running."""
    for agent in agents:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(agent.pid, signal.SIGTERM)  # started with its own session: pgid == pid
    deadline = time.monotonic() + 15
    while any(a.poll() is None for a in agents) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    for group in [*(a.pid for a in agents if a.poll() is None), *job_groups(workdir, since)]:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, signal.SIGKILL)
    for agent in agents:
        agent.wait()


def this_run(
    views: Iterable[NodeView], jobs: Iterable[JobRecord], started: float
) -> tuple[list[NodeView], list[JobRecord]]:
    """The nodes heard from and the jobs submitted since `started`: a second run in the same
    directory shares the store, and neither its live view nor its summary shows the first's."""
    seen = [v for v in views if v.last_seen is not None and v.last_seen >= started]
    return seen, [j for j in jobs if j.submitted_at >= started]


def summary(coordinator: Coordinator, engine: sa.Engine, started: float) -> dict[str, Any]:
    """This run's figures only: a second run in the same directory shares the store, so jobs
    and nodes are counted from `started`."""
    now = time.time()
    views = coordinator.parts.ingest.registry.nodes.values()
    seen, jobs = this_run(views, jobs_service.listing(engine, [], limit=100_000), started)
    config = coordinator.parts.config
    result = report_service.build(engine, config, window_s=now - started, now=now)
    figures = result.totals
    ended = [j for j in jobs if j.finished_at is not None]
    counts = coordinator.parts.power.counts
    return {
        "seconds": round(now - started, 1),
        "nodes": len(seen),
        "samples_stored": coordinator.parts.writer.stored,
        "jobs_submitted": len(jobs),
        "jobs_run": sum(1 for j in jobs if j.state is JobState.SUCCEEDED),
        "deadlines_met": sum(1 for j in ended if j.deadline_met),
        "deadlines_missed": sum(1 for j in ended if j.deadline_met is False),
        "sleeps": counts.get("sleep", 0),
        "wakes": counts.get("wake", 0),
        "kwh": figures.kwh,
        "kwh_saved": figures.saved_kwh,
        "caveats": list(result.caveats),
    }


def console_url(engine: sa.Engine, base: str) -> str:
    """The console's address with a fresh read token in its fragment (never sent to the
    server; the page keeps it for the session)."""
    token = token_service.create(engine, "read", "dormouse demo", time.time()).token
    return f"{base}#token={token}"


async def run_demo(
    plan: Plan, show: Show, announce: Callable[[str], None] = lambda url: None
) -> dict[str, Any]:
    plan.workdir.mkdir(parents=True, exist_ok=True)
    for name in ("amqtt", "transitions"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    host = default_node_name()
    config = settings(plan, free_port(), free_port(socket.SOCK_DGRAM), host)
    config.command_key_file.write_text(secrets.token_hex(32))
    config.command_key_file.chmod(0o600)
    broker = await start_broker(config.broker.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    engine = open_store(config, migrate_empty=True)
    coordinator = build(config, engine, key=load_key(config))
    kept = coordinator.parts.dispatcher.cluster.ready
    http = http_server(config, engine, coordinator.parts.clock, kept)
    agents: list[subprocess.Popen[bytes]] = []
    started = time.time()
    running = asyncio.create_task(run_with_http(coordinator, stop, http))
    url = console_url(engine, http.url) if http is not None else None
    if url is not None:
        announce(url)
    try:
        agents.append(start_agent(plan, config, host, {"DORMOUSE_OFFER_CPUS": "2"}))
        for i in range(1, plan.simulated + 1):
            agents.append(
                start_agent(
                    plan,
                    config,
                    f"sim-{i}",
                    {
                        "DORMOUSE_SIMULATED_LOAD": "true",  # idle by its jobs, not the host
                        "DORMOUSE_OFFER_CPUS": "2",
                        "DORMOUSE_OFFER_MEM": "4G",
                        "DORMOUSE_MACS": f"02:00:00:00:00:{i:02x}",
                    },
                )
            )
        submitter = asyncio.create_task(submit_jobs(engine, plan, stop))
        deadline = time.monotonic() + plan.duration_s
        while not stop.is_set() and time.monotonic() < deadline:
            views, jobs = this_run(
                coordinator.parts.ingest.registry.nodes.values(),
                jobs_service.listing(engine, [], limit=20),
                started,
            )
            show(views, jobs, deadline - time.monotonic())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
        stop.set()
        await submitter
    finally:
        stop.set()
        await stop_all(agents, plan.workdir, started)
        await running
        result = summary(coordinator, engine, started) | {"console_url": url}
        engine.dispose()
        await broker.shutdown()
    return result
