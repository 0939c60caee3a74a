"""Connections: established TCP connections on the configured service ports, from
/proc/net/tcp and tcp6. The coordinator balances stateless requests on this count."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from agent.samplers.base import Availability, Reading, read_error, read_text

ESTABLISHED = "01"
TABLES = ("net/tcp", "net/tcp6")


def count_established(text: str, ports: frozenset[int]) -> int:
    """Rows of a /proc/net/tcp table in state ESTABLISHED whose local port is a service port."""
    count = 0
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 4 or fields[3] != ESTABLISHED:
            continue
        port = int(fields[1].rsplit(":", 1)[1], 16)
        count += port in ports
    return count


class ConnectionsSampler:
    name = "connections"

    def __init__(self, ports: Iterable[int], proc_root: Path = Path("/proc")) -> None:
        self._ports = frozenset(ports)
        self._tables = [proc_root / t for t in TABLES]

    def sample(self) -> Reading:
        if not self._ports:
            return Reading(metrics={"connections": 0})
        texts = [read_text(t) for t in self._tables]
        if all(t is None for t in texts):
            return Reading(metrics={"connections": None})
        return Reading(
            metrics={"connections": sum(count_established(t or "", self._ports) for t in texts)}
        )

    def check(self) -> Availability:
        if not self._ports:
            return Availability(self.name, True, "no service_ports configured: counts 0")
        error = read_error(self._tables[0])
        if error:
            return Availability(self.name, False, error)
        return Availability(self.name, True, f"ports {', '.join(map(str, sorted(self._ports)))}")
