"""sd_notify for `Type=notify` units: READY=1 once, WATCHDOG=1 from the sampling loop.

Speaks the protocol directly (a datagram to $NOTIFY_SOCKET) rather than pulling in a
library; does nothing when systemd did not ask for it.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Mapping


class Notifier:
    def __init__(
        self, env: Mapping[str, str] | None = None, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        env = os.environ if env is None else env
        path = env.get("NOTIFY_SOCKET", "")
        self._address = "\0" + path[1:] if path.startswith("@") else path
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        wanted = usec.isdigit() and (not pid or pid == str(os.getpid()))
        self._watchdog_every_s = int(usec) / 1e6 / 2 if wanted else None
        self._monotonic = monotonic
        self._last_ping = -float("inf")
        self._ready = False

    def _send(self, state: str) -> None:
        if not self._address:
            return
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(state.encode(), self._address)

    def ready(self) -> None:
        """Once: the agent samples (and spools, or publishes)."""
        if not self._ready:
            self._ready = True
            self._send("READY=1")

    def watchdog(self) -> None:
        """From the sampling loop: at most twice per watchdog period."""
        now = self._monotonic()
        if self._watchdog_every_s is not None and now - self._last_ping >= self._watchdog_every_s:
            self._last_ping = now
            self._send("WATCHDOG=1")

    def stopping(self) -> None:
        self._send("STOPPING=1")
