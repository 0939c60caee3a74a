"""Serving the app with uvicorn inside `dormouse run`'s event loop (no signal handlers of
its own: the coordinator stops it with everything else)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator

import uvicorn
from starlette.applications import Starlette

from coordinator.settings import Http
from shared.config import NO_FILE
from shared.errors import ConfigError

log = logging.getLogger(__name__)
GRACE_S = 2.0


def bind(listen: str) -> socket.socket:
    """The listening socket, opened now so a taken port fails `dormouse run` at once."""
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, int(port)))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"http.listen {listen}: {exc.strerror}") from None
    sock.listen(128)
    sock.setblocking(False)
    return sock


def tls(settings: Http) -> dict[str, str]:
    cert, key = settings.tls_cert, settings.tls_key
    if (cert == NO_FILE) != (key == NO_FILE):
        raise ConfigError("http: tls_cert and tls_key go together (set both, or neither)")
    if cert == NO_FILE:
        return {}
    for path in (cert, key):
        if not path.is_file():
            raise ConfigError(f"http: {path} is not a readable file")
    return {"ssl_certfile": str(cert), "ssl_keyfile": str(key)}


class EmbeddedServer(uvicorn.Server):
    """uvicorn without its own SIGINT/SIGTERM handlers, which would replace the daemon's."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class HttpServer:
    """Bound when built (errors before the daemon starts); serves until `stop`."""

    def __init__(self, app: Starlette, settings: Http) -> None:
        pair = tls(settings)
        self.sock = bind(settings.listen)
        self.scheme = "https" if pair else "http"
        config = uvicorn.Config(
            app,
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=int(GRACE_S),
            **pair,  # type: ignore[arg-type]
        )
        self._server = EmbeddedServer(config)

    @property
    def url(self) -> str:
        host, port = self.sock.getsockname()[:2]
        return f"{self.scheme}://{host if ':' not in host else f'[{host}]'}:{port}/"

    async def serve(self) -> None:
        log.info("HTTP API and console on %s", self.url)
        try:
            await self._server.serve(sockets=[self.sock])
        finally:
            self.sock.close()

    async def stop(self) -> None:
        self._server.should_exit = True
        await asyncio.sleep(0)
