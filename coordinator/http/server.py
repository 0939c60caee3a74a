"""Serving the app with uvicorn inside `dormouse run`, on a thread and event loop of its own
(`ServerThread`; no signal handlers of its own: the coordinator stops it with everything
else)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

import uvicorn
from starlette.applications import Starlette

from coordinator.settings import Http
from shared.config import NO_FILE
from shared.errors import ConfigError

log = logging.getLogger(__name__)
GRACE_S = 2.0
T = TypeVar("T")


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


class ServerThread:
    """The HTTP server on an event loop and thread of its own, beside the daemon's: however
    busy the API is (a dashboard polling, a script looping on `pick`), parsing, routing and
    encoding run there, so the daemon's loop that ingests and decides is never queued behind
    requests; they share only the interpreter (its lock) and the store. What must read the
    daemon's state (least-connections `pick`) is handed to the daemon's loop (`in_daemon`)."""

    def __init__(self, server: HttpServer) -> None:
        self.server = server
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, name="http", daemon=True)
        self._failed: BaseException | None = None

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        try:
            self._loop.run_until_complete(self.server.serve())
        except BaseException as exc:
            self._failed = exc
        finally:
            self._loop.close()

    def start(self) -> None:
        self._thread.start()

    async def stop(self) -> None:
        """Ask the server to finish (its requests get `GRACE_S`), then wait for its thread."""
        if self._loop is not None and self._thread.is_alive():
            with contextlib.suppress(RuntimeError):  # its loop closed meanwhile
                asyncio.run_coroutine_threadsafe(self.server.stop(), self._loop)
        await asyncio.to_thread(self._thread.join, GRACE_S + 5)
        if self._failed is not None:
            raise self._failed


def in_daemon(loop: asyncio.AbstractEventLoop) -> Callable[[Callable[[], T]], Awaitable[T]]:
    """A call run on the daemon's loop (between its passes, never during one), awaited from
    the HTTP server's."""

    async def call(fn: Callable[[], T]) -> T:
        async def run() -> T:
            return fn()

        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(run(), loop))

    return call
