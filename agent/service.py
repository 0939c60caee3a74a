"""Wiring: open the agent's resources, run it until SIGTERM/SIGINT, close everything."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import shutil
import signal
import sqlite3
from collections.abc import Callable
from contextlib import ExitStack
from typing import TypeVar

import aiomqtt

from agent.accepted import ACCEPTED_FILE, FileAccepted
from agent.daemon import Agent
from agent.identity import build_hello, mac_addresses
from agent.jobdir import count_running
from agent.runner import Runner, check_user
from agent.samplers import build_samplers
from agent.samplers.base import Availability, Sampler
from agent.samplers.gpu import GpuSampler
from agent.samplers.memory import MemorySampler
from agent.settings import AgentConfig
from agent.sleeper import Sleeper
from agent.spool import SPOOL_FILE, Spool
from agent.storefiles import open_store
from shared.clock import Clock, SystemClock
from shared.config import read_key_file
from shared.edge.notify import Notifier
from shared.errors import ConfigError
from shared.messages import Hello
from shared.signing import Accepted, MemoryAccepted, Verifier

log = logging.getLogger(__name__)
T = TypeVar("T")


def host_samplers(
    config: AgentConfig,
    jobs_running: Callable[[], int] | None = None,
    spool_held: Callable[[], int] | None = None,
) -> list[Sampler]:
    """This host's samplers; without a live runner, running jobs are counted on disk, and
    without a live spool nothing is held in memory."""
    if jobs_running is None:
        jobs_running = functools.partial(count_running, config.jobs_dir)
    return build_samplers(
        service_ports=config.service_ports,
        jobs_running=jobs_running,
        spool_held=spool_held or (lambda: 0),
        simulated_load=config.simulated_load,
    )


def of_type(samplers: list[Sampler], kind: type[T]) -> T:
    return next(s for s in samplers if isinstance(s, kind))


def gpu_sampler(samplers: list[Sampler]) -> GpuSampler | None:
    """The GPU sampler; None on a simulated node, which has none of the host's GPUs."""
    return next((s for s in samplers if isinstance(s, GpuSampler)), None)


def close_samplers(samplers: list[Sampler]) -> None:
    """Let go of NVML (the one sampler that holds a library open)."""
    gpu = gpu_sampler(samplers)
    if gpu is not None:
        gpu.close()


def load_verifier(
    config: AgentConfig, started_at: float, accepted: Accepted | None = None
) -> Verifier | None:
    """The command verifier, or None (every command refused) when no key is installed;
    `accepted` (on disk in the daemon) keeps replay protection across restarts."""
    key = read_key_file(config.command_key_file)
    if key is None:
        log.warning(
            "no command key at %s: commands (resend, jobs, sleep) will be refused",
            config.command_key_file,
        )
        return None
    return Verifier(key, config.node, SystemClock(), not_before=started_at, accepted=accepted)


def open_spool(config: AgentConfig, clock: Clock) -> Spool:
    def spool(memory_only: str | None = None) -> Spool:
        return Spool(
            config.spool_dir,
            config.node,
            clock,
            max_bytes=config.spool_max_bytes,
            keep_s=config.spool_keep,
            memory_only=memory_only,
            flush_every_s=config.publish_interval,
        )

    return open_store(config.spool_dir / SPOOL_FILE, "spool", spool, spool)


def open_accepted(config: AgentConfig) -> Accepted:
    path = config.spool_dir / ACCEPTED_FILE

    def on_disk() -> Accepted:
        return FileAccepted(path)

    def in_memory(_why: str) -> Accepted:
        return MemoryAccepted()

    return open_store(path, "accepted commands", on_disk, in_memory)


async def serve(config: AgentConfig) -> None:
    clock = SystemClock()
    runner = Runner(
        config.jobs_dir,
        config.node,
        clock,
        log_max_bytes=config.job_log_max_bytes,
        kill_grace_s=config.job_kill_grace,
        keep_s=config.job_keep,
        user=config.job_user,
    )
    runner.recover()
    with ExitStack() as stack:
        spool = open_spool(config, clock)
        stack.callback(spool.close)
        samplers = host_samplers(config, runner.count, lambda: spool.held)
        gpu, memory = gpu_sampler(samplers), of_type(samplers, MemorySampler)

        accepted = open_accepted(config)
        if isinstance(accepted, FileAccepted):
            stack.callback(accepted.close)
        verifier = load_verifier(config, clock.now(), accepted)
        key = verifier.key_id if verifier is not None else ""

        def hello() -> Hello:
            gpus = gpu.inventory() if gpu is not None else ()
            return build_hello(
                config,
                ts=clock.now(),
                mem_total_bytes=memory.total_bytes(),
                gpus=gpus,
                command_key=key,
            )

        stack.callback(close_samplers, samplers)
        agent = Agent(
            config,
            samplers=samplers,
            spool=spool,
            clock=clock,
            notifier=Notifier(),
            verifier=verifier,
            hello=hello,
            runner=runner,
            sleeper=Sleeper(config, config.macs or mac_addresses()),
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        log.info(
            "agent %s sampling every %gs, spool %s (next seq %d)",
            config.node,
            config.interval,
            spool.path,
            spool.next_seq,
        )
        await agent.run(stop)


async def check_broker(config: AgentConfig, timeout_s: float = 5.0) -> Availability:
    broker = config.broker
    try:
        async with aiomqtt.Client(
            **broker.client_kwargs(config.mqtt),
            timeout=timeout_s,
            identifier=f"{config.node}-check",
        ):
            return Availability("broker", True, f"{broker} accepts connections", True)
    except aiomqtt.MqttError as exc:
        return Availability("broker", False, f"{broker}: {exc}", True)


MIN_FREE_BYTES = 16 * 2**20  # less free space than this and the spool is about to fail


def check_spool(config: AgentConfig) -> Availability:
    """The spool opens, its directory takes writes, and its disk has room: a running agent
    would otherwise be holding samples in memory (lost if it stops)."""
    try:
        spool = Spool(config.spool_dir, config.node, SystemClock(), claim=False)
    except (OSError, sqlite3.Error) as exc:
        return Availability("spool", False, f"{config.spool_dir}: {exc}", True)
    detail = f"{spool.path}: stream from seq {spool.stream_first}, next seq {spool.next_seq}"
    spool.close()
    free = shutil.disk_usage(config.spool_dir).free
    if not os.access(config.spool_dir, os.W_OK):
        return Availability("spool", False, f"{detail}; the directory is read-only", True)
    if free < MIN_FREE_BYTES:
        return Availability("spool", False, f"{detail}; disk nearly full ({free} B free)", True)
    return Availability("spool", True, f"{detail}, {free // 2**20} MiB free", True)


def check_key(config: AgentConfig) -> Availability:
    try:
        key = read_key_file(config.command_key_file)
    except ConfigError as exc:
        key, reason = None, str(exc)
    else:
        reason = "No such file or directory"
    if key is None:
        return Availability(
            "command key", False, f"{config.command_key_file}: {reason} (commands will be refused)"
        )
    return Availability("command key", True, str(config.command_key_file))


def check_jobs(config: AgentConfig) -> Availability:
    """Jobs can run: the jobs directory is writable and `job_user` is usable."""
    try:
        check_user(config.job_user)
        config.jobs_dir.mkdir(parents=True, exist_ok=True)
        probe = config.jobs_dir / ".dormouse-check"
        probe.write_text("")
        probe.unlink()
    except (ConfigError, OSError) as exc:
        return Availability("jobs_dir", False, f"{config.jobs_dir}: {exc}", True)
    who = config.job_user or "the agent's user"
    running = count_running(config.jobs_dir)
    return Availability(
        "jobs_dir", True, f"{config.jobs_dir}, run as {who}, {running} running", True
    )
