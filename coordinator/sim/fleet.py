"""The simulated fleet: node types with capacity, power by state, and resume behaviour.

From `--nodes N --gpus-per-node G` (one type, defaults below) or a fleet TOML file:

    [[nodes]]
    name = "gpu"            # nodes are gpu-000, gpu-001, ...
    count = 16
    gpus = 8
    cpus = 64
    mem = "512G"
    idle_w = 500            # awake, nothing running
    busy_w = 3000           # awake, fully used (power grows linearly with the share used)
    asleep_w = 10
    resume_latency = "2m"
    resume_jitter = "30s"   # each resume takes latency +- up to this
    wake_failure = 0.01     # probability that a wake never brings the node back
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from typing import Any

from coordinator.core.tick import Shape
from shared.errors import ConfigError
from shared.units import parse_duration, parse_size

GIB = 2**30


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeType:
    name: str
    count: int
    gpus: int
    cpus: int
    mem_bytes: int
    idle_w: float
    busy_w: float
    asleep_w: float
    resume_latency_s: float
    resume_jitter_s: float = 0.0
    wake_failure: float = 0.0

    @property
    def shape(self) -> Shape:
        return Shape(
            cpus=self.cpus, mem_bytes=self.mem_bytes, gpus=tuple(range(self.gpus)), labels={}
        )

    def power_w(self, used: float) -> float:
        """Awake power with `used` (0..1) of the node taken."""
        return self.idle_w + (self.busy_w - self.idle_w) * min(1.0, used)


def default_type(count: int, gpus: int) -> NodeType:
    """A typical server: 4 CPUs and 32 GiB per GPU, ~60 W idle and ~350 W busy per GPU."""
    return NodeType(
        name="node",
        count=count,
        gpus=gpus,
        cpus=max(4 * gpus, 32),
        mem_bytes=max(32 * gpus, 128) * GIB,
        idle_w=100.0 + 60.0 * gpus,
        busy_w=300.0 + 350.0 * gpus,
        asleep_w=10.0,
        resume_latency_s=120.0,
    )


def parse_fleet(text: str, name: str = "fleet") -> list[NodeType]:
    try:
        tables = tomllib.loads(text).get("nodes")
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{name}: not valid TOML: {exc}") from None
    if not isinstance(tables, list) or not tables:
        raise ConfigError(f"{name}: expected one or more [[nodes]] tables")
    return [_node_type(t, f"{name}: nodes[{i}]") for i, t in enumerate(tables)]


def _node_type(table: dict[str, Any], where: str) -> NodeType:
    try:
        kind = NodeType(
            name=str(table.get("name", "node")),
            count=int(table["count"]),
            gpus=int(table.get("gpus", 0)),
            cpus=int(table["cpus"]),
            mem_bytes=parse_size(table["mem"]),
            idle_w=float(table["idle_w"]),
            busy_w=float(table["busy_w"]),
            asleep_w=float(table.get("asleep_w", 10.0)),
            resume_latency_s=parse_duration(table.get("resume_latency", "2m")),
            resume_jitter_s=parse_duration(table.get("resume_jitter", "0s")),
            wake_failure=float(table.get("wake_failure", 0.0)),
        )
    except KeyError as exc:
        raise ConfigError(f"{where}: missing {exc.args[0]}") from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from None
    if kind.count < 1 or kind.cpus < 1 or not 0 <= kind.wake_failure <= 1:
        raise ConfigError(f"{where}: count and cpus must be >= 1, wake_failure in 0..1")
    return kind
