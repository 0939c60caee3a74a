"""Wiring for `dormouse run` and the store-reading commands."""

from __future__ import annotations

import asyncio
import logging
import signal
from wsgiref.simple_server import WSGIServer

import sqlalchemy as sa
from prometheus_client import CollectorRegistry, start_http_server

from coordinator.core.ingest import Ingest
from coordinator.core.registry import Registry
from coordinator.core.seqs import SeqTracker
from coordinator.daemon.coordinator import Coordinator
from coordinator.daemon.metrics_http import CoordinatorCollector
from coordinator.settings import CoordinatorConfig
from coordinator.store import nodes as node_rows
from coordinator.store import samples as sample_rows
from coordinator.store.engine import create_engine, current_revision, head_revision, upgrade
from shared.clock import SystemClock
from shared.config import read_key_file
from shared.edge.notify import Notifier
from shared.errors import ConfigError

log = logging.getLogger(__name__)


def open_store(config: CoordinatorConfig, *, migrate_empty: bool) -> sa.Engine:
    """The engine, at the newest schema: an empty store is migrated when `migrate_empty`;
    one at an older revision is refused (upgrading is the operator's call)."""
    try:
        engine = create_engine(config.db_url)
        revision = current_revision(engine)
    except (sa.exc.SQLAlchemyError, OSError) as exc:
        raise ConfigError(f"db: cannot open {_safe(config.db_url)}: {exc}") from None
    if revision is None and migrate_empty:
        upgrade(engine)
        log.info("created the store at %s", _safe(config.db_url))
    elif revision is None:
        raise ConfigError(
            f"db: {_safe(config.db_url)} holds no dormouse store yet "
            "(run `dormouse run` or `dormouse db upgrade`)"
        )
    elif revision != head_revision():
        raise ConfigError(
            f"db: store is at revision {revision}, this release needs "
            f"{head_revision()}: run `dormouse db upgrade`"
        )
    return engine


def _safe(url: str) -> str:
    return sa.engine.make_url(url).render_as_string(hide_password=True)


def load_key(config: CoordinatorConfig) -> bytes | None:
    key = read_key_file(config.command_key_file)
    if key is None:
        log.warning(
            "no command key at %s: gaps cannot be asked for again (`dormouse key generate`)",
            config.command_key_file,
        )
    return key


def build(config: CoordinatorConfig, engine: sa.Engine) -> Coordinator:
    with engine.connect() as conn:
        registry = Registry(config.offline_after, node_rows.load_nodes(conn))
        seqs = SeqTracker(sample_rows.stored_high(conn), retry_s=config.resend_retry)
    return Coordinator(
        config,
        engine=engine,
        ingest=Ingest(registry, seqs),
        clock=SystemClock(),
        key=load_key(config),
        notifier=Notifier(),
    )


async def serve(config: CoordinatorConfig) -> None:
    engine = open_store(config, migrate_empty=True)
    coordinator = build(config, engine)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    log.info(
        "coordinator: %d known nodes, store %s",
        len(coordinator.ingest.registry.nodes),
        _safe(config.db_url),
    )
    server = serve_metrics(config.metrics_listen, coordinator) if config.metrics_listen else None
    try:
        await coordinator.run(stop)
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
