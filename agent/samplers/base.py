"""The one small protocol every sampler implements, and what a sampler returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from shared.messages import GpuSample

MetricValue = float | int | tuple[float, ...] | None


@dataclass(frozen=True, slots=True)
class Reading:
    """Part of one sample: node metrics by name, and per-GPU samples."""

    metrics: dict[str, MetricValue] = field(default_factory=dict)
    gpus: tuple[GpuSample, ...] = ()


@dataclass(frozen=True, slots=True)
class Availability:
    """What `dormouse-agent check` prints for a sampler: whether it measures, and why not."""

    name: str
    ok: bool
    detail: str
    required: bool = False


class Sampler(Protocol):
    name: str

    def sample(self) -> Reading:
        """Measure now. Missing hardware gives `None` values, never an exception."""
        ...

    def check(self) -> Availability: ...


def read_text(path: Path) -> str | None:
    """A kernel file's text, or None when it is absent or unreadable (no hardware, no root)."""
    try:
        return path.read_text()
    except OSError:
        return None


def read_error(path: Path) -> str | None:
    """Why `path` cannot be read, for `check`: None when it can."""
    try:
        path.read_bytes()
    except OSError as exc:
        return f"{path}: {exc.strerror or exc}"
    return None
