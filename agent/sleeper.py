"""Putting the host to sleep, the I/O edge: `systemctl suspend`, `rtcwake -m mem`, a custom
command, or `dry-run`, which imitates a suspended host for tests and demos.

`sleep()` returns once the host is back. `rtcwake` returns by itself after the resume;
`systemctl suspend` and custom commands return at once and the host suspends a moment later,
so the resume is seen as a jump of CLOCK_BOOTTIME over CLOCK_MONOTONIC (the first counts
suspended time, the second does not). `dry-run` waits for a Wake-on-LAN magic packet for one
of the host's MACs on a UDP port (or `dry_run_max`), as a NIC would.
"""

from __future__ import annotations

import asyncio
import contextlib
import shlex
import socket
import time
from collections.abc import Iterator

from agent.settings import AgentConfig

SUSPEND_WAIT_S = 120.0  # a suspend that has not happened by then did not happen
RESUME_JUMP_S = 1.0
POLL_S = 0.5


class SleepFailed(Exception):
    """The host did not sleep; the reason is the message."""


def magic_packet_for(data: bytes, macs: tuple[str, ...]) -> str | None:
    """The MAC a Wake-on-LAN packet wakes (6 x 0xFF, then 16 x the MAC), if one of `macs`."""
    if len(data) < 102 or data[:6] != b"\xff" * 6:
        return None
    for mac in macs:
        if data[6:102] == bytes.fromhex(mac.replace(":", "")) * 16:
            return mac
    return None


def suspended_s() -> float:
    """Seconds this host has spent suspended since boot."""
    return time.clock_gettime(time.CLOCK_BOOTTIME) - time.clock_gettime(time.CLOCK_MONOTONIC)


class Sleeper:
    def __init__(self, config: AgentConfig, macs: tuple[str, ...]) -> None:
        self._config, self._macs = config, macs

    def command(self) -> list[str] | None:
        """The command the method runs (None for dry-run)."""
        method = self._config.sleep_method
        if method == "systemctl-suspend":
            return ["systemctl", "suspend"]
        if method == "rtcwake":
            return ["rtcwake", "-m", "mem", "-s", str(int(self._config.rtcwake_after))]
        if method == "command":
            return shlex.split(self._config.sleep_command)
        return None

    async def sleep(self) -> str:
        """Sleep; returns how the host came back. Raises SleepFailed if it did not sleep."""
        argv = self.command()
        if argv is None:
            return await self.dry_run()
        before = suspended_s()
        await _run(argv)
        if self._config.sleep_method == "rtcwake":
            return "rtcwake returned"
        return await _resumed(before)

    async def dry_run(self) -> str:
        with _listener(self._config.wol_listen_addr, self._config.wol_listen_port) as sock:
            loop = asyncio.get_running_loop()
            try:
                async with asyncio.timeout(self._config.dry_run_max):
                    while True:
                        data = await loop.sock_recv(sock, 2048)
                        mac = magic_packet_for(data, self._macs)
                        if mac is not None:
                            return f"Wake-on-LAN packet for {mac}"
            except TimeoutError:
                return f"woke by itself after {self._config.dry_run_max:g}s (dry_run_max)"


@contextlib.contextmanager
def _listener(address: str, port: int) -> Iterator[socket.socket]:
    """Bound to `address`, by default the loopback broadcast address: every dry-run agent on
    this host hears a packet broadcast there, and nothing from the network reaches it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)  # several dry-run agents
        sock.bind((address, port))
    except OSError as exc:
        sock.close()
        raise SleepFailed(
            f"cannot listen for Wake-on-LAN on {address}:{port} (UDP): {exc}"
        ) from exc
    sock.setblocking(False)
    try:
        yield sock
    finally:
        sock.close()


async def _run(argv: list[str]) -> None:
    if not argv:
        raise SleepFailed("sleep_method is command but sleep_command is empty")
    try:
        process = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
        )
        _, err = await process.communicate()  # rtcwake: returns after the resume
    except OSError as exc:
        raise SleepFailed(f"{argv[0]}: {exc.strerror or exc}") from exc
    if process.returncode != 0:
        last = err.decode(errors="replace").strip().splitlines()[-1:] or [""]
        raise SleepFailed(f"{shlex.join(argv)} exited {process.returncode}: {last[0]}")


async def _resumed(before: float) -> str:
    waited = 0.0
    while waited < SUSPEND_WAIT_S:
        jump = suspended_s() - before
        if jump > RESUME_JUMP_S:
            return f"resumed after {jump:.0f}s suspended"
        await asyncio.sleep(POLL_S)
        waited += POLL_S
    raise SleepFailed(f"the host did not suspend within {SUSPEND_WAIT_S:g}s")
