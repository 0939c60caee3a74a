"""`dormouse run`: open the store, build and wire the daemon's parts, serve until SIGTERM."""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import signal
from collections.abc import Callable
from wsgiref.simple_server import WSGIServer

import sqlalchemy as sa
from prometheus_client import CollectorRegistry, start_http_server

from coordinator.core.ingest import Ingest, Limits
from coordinator.core.live import Digest, digest_every
from coordinator.core.registry import NodeView, Registry
from coordinator.core.seqs import Seqs, SeqTracker, Untracked
from coordinator.core.storegaps import StoreGaps
from coordinator.core.tick import ResumeLatencies
from coordinator.daemon.commands import CommandSender
from coordinator.daemon.coordinator import Coordinator, Parts
from coordinator.daemon.costs import CostWatch
from coordinator.daemon.dispatch import Dispatcher
from coordinator.daemon.figures import Figures
from coordinator.daemon.gap_scan import GapScan
from coordinator.daemon.housekeeping import Housekeeping
from coordinator.daemon.leadership import Leadership
from coordinator.daemon.live import LiveFeed
from coordinator.daemon.maintenance import Maintenance
from coordinator.daemon.metrics_http import CoordinatorCollector
from coordinator.daemon.mqtt import MqttLink
from coordinator.daemon.power_loop import PowerLoop
from coordinator.daemon.receiver import Receiver
from coordinator.daemon.slurm_bridge import SlurmBridge
from coordinator.daemon.writer import Writer
from coordinator.http.api import Api
from coordinator.http.app import create_app
from coordinator.http.server import HttpServer, ServerThread, in_daemon
from coordinator.placement.state import ClusterState
from coordinator.power.energy import EnergyMeter
from coordinator.services import tariffs
from coordinator.services.store import open_store, safe_url
from coordinator.settings import ROLE_ALL, ROLE_INGEST, ROLE_LEADER, CoordinatorConfig
from coordinator.store import nodes as node_rows
from coordinator.store import samples as sample_rows
from shared.clock import Clock, SystemClock
from shared.config import read_key_file
from shared.edge.notify import Notifier
from shared.edge.tasks import Stopping
from shared.errors import ConfigError
from shared.signing import key_id

log = logging.getLogger(__name__)


def load_key(config: CoordinatorConfig) -> bytes | None:
    key = read_key_file(config.command_key_file)
    if key is None:
        log.warning(
            "no command key at %s: no job is placed, no node slept or woken, no gap asked for "
            "again (`dormouse key generate`, then copy it to every agent)",
            config.command_key_file,
        )
    return key


def tracker_from_store(conn: sa.Connection, retry_s: float) -> SeqTracker:
    """Each node's highest stored seq, and the holes below it a restart asks for again."""
    return SeqTracker(sample_rows.stored_high(conn), holes=sample_rows.holes(conn), retry_s=retry_s)


def build(
    config: CoordinatorConfig,
    engine: sa.Engine,
    *,
    clock: Clock | None = None,
    key: bytes | None = None,
    notifier: Notifier | None = None,
) -> Coordinator:
    """Every part of the daemon, built once and wired here (nothing calls back into the
    coordinator): registry and seqs from the store, one command sender, one resume-latency
    estimate shared by placement and the power loop."""
    clock = clock or SystemClock()
    notifier = notifier or Notifier(env={})
    role = config.role
    with engine.connect() as conn:
        registry = Registry(config.offline_after, node_rows.load_nodes(conn))
        seqs: Seqs = (
            tracker_from_store(conn, config.resend_retry) if role == ROLE_ALL else Untracked()
        )
    limits = Limits(
        max_skew_s=config.max_clock_skew,
        max_age_s=config.retention.raw,
        max_nodes=config.max_nodes,
    )
    gaps = StoreGaps(retry_s=config.resend_retry) if role == ROLE_LEADER else None
    ingest = Ingest(registry, seqs, limits, gone=gaps.gone if gaps else None)
    stopping = Stopping()
    leadership = Leadership(engine, clock, stopping, lease_s=config.leader_lease)
    sender = CommandSender(key, config.command_key_file, clock, leadership)
    latencies = ResumeLatencies()
    digest = Digest(digest_every(config.offline_after)) if role == ROLE_INGEST else None
    writer = Writer(engine, config, clock, digest)
    energy = EnergyMeter(config.offline_after)
    dispatcher = Dispatcher(
        engine,
        registry,
        config.jobs,
        sender,
        latencies=latencies,
        default_resume_s=config.power.resume_latency,
        holds=tariffs.holds(config.cost),
        own_key=key_id(key) if key is not None else None,
        costs=CostWatch(engine, config, registry),
    )
    bridge = SlurmBridge(config.slurm, registry) if config.slurm.enabled else None
    power = PowerLoop(engine, registry, config.power, sender, latencies, slurm=bridge)
    receiver = Receiver(
        ingest=ingest,
        writer=writer,
        energy=energy,
        sender=sender,
        dispatcher=dispatcher,
        power=power,
        clock=clock,
        leadership=leadership,
    )
    feed = LiveFeed(engine, registry, clock, stopping) if role == ROLE_LEADER else None
    gap_scan = None
    if feed is not None and gaps is not None:
        gap_scan = GapScan(engine, registry, feed, gaps, receiver.ask_resend)
    figures = Figures(
        ingest, writer, receiver, dispatcher, power, gap_scan.gaps if gap_scan else None
    )
    leadership.on_lead(functools.partial(adopt_nodes, engine, registry))
    parts = Parts(
        config=config,
        clock=clock,
        ingest=ingest,
        writer=writer,
        energy=energy,
        receiver=receiver,
        link=MqttLink(config, sender, receiver.handle, stopping),
        dispatcher=dispatcher,
        power=power,
        housekeeping=Housekeeping(
            engine=engine,
            ingest=ingest,
            receiver=receiver,
            notifier=notifier,
            clock=clock,
            offline_after_s=config.offline_after,
            stats=figures.collect,
            stopping=stopping,
            leadership=leadership,
            role=role,
            gap_scan=gap_scan,
        ),
        maintenance=Maintenance(engine, config, clock, leadership),
        leadership=leadership,
        live_feed=feed,
        figures=figures,
        notifier=notifier,
        stopping=stopping,
    )
    return Coordinator(parts)


async def adopt_nodes(engine: sa.Engine, registry: Registry) -> None:
    """A takeover: the node rows the last leader wrote (sleeping, asleep, failed...)."""

    def load() -> list[NodeView]:
        with engine.connect() as conn:
            return node_rows.load_nodes(conn)

    registry.adopt(await asyncio.to_thread(load))


GC_THRESHOLDS = (10_000, 20, 20)  # CPython's defaults are (700, 10, 10)


def tune_gc() -> None:
    """Fewer garbage-collector passes for a process that decodes thousands of messages a
    second: what start-up built (modules, the registry) is frozen out of every pass, and
    the youngest generation is collected every 10,000 allocations, not 700. Measured on an
    ingest worker: 0.51 -> 0.45 CPU seconds per 10,000 samples (`docs/benchmarks.md`)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


async def serve(config: CoordinatorConfig) -> None:
    engine = open_store(config, migrate_empty=True)
    coordinator = build(config, engine, key=load_key(config), notifier=Notifier())
    tune_gc()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    log.info(
        "coordinator (role %s): %d known nodes, store %s",
        config.role,
        len(coordinator.parts.ingest.registry.nodes),
        safe_url(config.db_url),
    )
    kept = coordinator.parts.dispatcher.cluster.ready
    http = http_server(config, engine, coordinator.parts.clock, kept)
    server = serve_metrics(config.metrics_listen, coordinator) if config.metrics_listen else None
    try:
        await run_with_http(coordinator, stop, http)
    finally:
        if server is not None:
            server.shutdown()
        engine.dispose()


def serve_metrics(listen: str, coordinator: Coordinator) -> WSGIServer:
    """Prometheus /metrics from a thread of prometheus-client's, reading the coordinator."""
    host, _, port = listen.rpartition(":")
    registry = CollectorRegistry(auto_describe=False)
    registry.register(CoordinatorCollector(coordinator))
    try:
        server, _ = start_http_server(int(port), addr=host.strip("[]"), registry=registry)
    except OSError as exc:
        raise ConfigError(f"metrics_listen {listen}: {exc.strerror}") from None
    log.info("Prometheus metrics on http://%s/metrics", listen)
    return server


def http_server(
    config: CoordinatorConfig,
    engine: sa.Engine,
    clock: Clock,
    kept: Callable[[], ClusterState | None] | None = None,
) -> HttpServer | None:
    """The API and console when `[http] listen` is set: bound now, so a taken port or a bad
    TLS pair stops `dormouse run` before it starts. `kept` is the daemon's placement state."""
    if not config.http.listen:
        return None
    daemon = in_daemon(asyncio.get_running_loop())
    return HttpServer(
        create_app(Api(engine, config, clock, kept=kept, in_daemon=daemon)), config.http
    )


async def run_with_http(
    coordinator: Coordinator, stop: asyncio.Event, http: HttpServer | None
) -> None:
    """The coordinator, and beside it, on its own thread and loop, the HTTP server until the
    coordinator has stopped."""
    if http is None:
        await coordinator.run(stop)
        return
    thread = ServerThread(http)
    thread.start()
    try:
        await coordinator.run(stop)
    finally:
        await thread.stop()
