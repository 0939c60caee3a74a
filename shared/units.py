"""Parse the human units operators type: durations ("90s", "5m", "2h") and sizes ("4G")."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime

J_PER_KWH = 3.6e6  # joules in a kilowatt-hour
_DURATION_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_SIZE_BYTES = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "t": 1000**4,
    "tb": 1000**4,
    "ki": 1024,
    "kib": 1024,
    "mi": 1024**2,
    "mib": 1024**2,
    "gi": 1024**3,
    "gib": 1024**3,
    "ti": 1024**4,
    "tib": 1024**4,
}
_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_SIZE_RE = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]*)")


def parse_duration(text: str | float) -> float:
    """Seconds from "1h30m", "90s", "250ms" or a bare number of seconds; ValueError otherwise."""
    if isinstance(text, bool):
        raise ValueError(f"not a duration: {text!r}")
    if isinstance(text, int | float):
        return _non_negative(float(text), text)
    compact = text.strip().lower().replace(" ", "")
    if re.fullmatch(r"\d+(?:\.\d+)?", compact):
        return _non_negative(float(compact), text)
    parts = _DURATION_RE.findall(compact)
    if not parts or "".join(n + u for n, u in parts) != compact:
        raise ValueError(f"not a duration: {text!r} (use e.g. 30s, 5m, 2h, 1d or 1h30m)")
    return sum(float(n) * _DURATION_S[u] for n, u in parts)


def parse_size(text: str | int) -> int:
    """Bytes from "4G" (10^9), "64MiB" (2^20 units), "512k" or a bare integer."""
    if isinstance(text, bool):
        raise ValueError(f"not a size: {text!r}")
    if isinstance(text, int):
        return int(_non_negative(float(text), text))
    match = _SIZE_RE.fullmatch(text.strip().lower())
    if match is None or match.group(2) not in _SIZE_BYTES:
        raise ValueError(f"not a size: {text!r} (use e.g. 512M, 4G, 64MiB)")
    return int(float(match.group(1)) * _SIZE_BYTES[match.group(2)])


def format_duration(seconds: float) -> str:
    """An exact spelling `parse_duration` reads back: 604800 -> "1w", 90 days -> "90d",
    90 -> "1m30s", 0.25 -> "250ms" (weeks only when whole); a remainder under a millisecond
    falls back to bare seconds."""
    if seconds == 0:
        return "0s"
    millis = round(seconds * 1000)
    if abs(millis - seconds * 1000) > 1e-6:
        return f"{seconds:.12f}".rstrip("0").rstrip(".")
    week = 604_800_000
    if millis % week == 0:
        return f"{millis // week}w"
    parts = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        count, millis = divmod(millis, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def format_bytes(count: float) -> str:
    """1536 -> "1.5 KiB": binary units, as `free -h` and `df -h` print them."""
    if abs(count) < 1024:
        return f"{count:.0f} B"
    size = count / 1024
    for unit in ("KiB", "MiB", "GiB"):
        if abs(size) < 1024:
            return f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def format_labels(labels: Mapping[str, object]) -> str:
    """{"rack": "r1", "zone": "a"} -> "rack=r1,zone=a", as `--label` takes them."""
    return ",".join(f"{k}={v}" for k, v in labels.items())


def _non_negative(value: float, original: object) -> float:
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"must be a finite number >= 0: {original!r}")
    return value


def iso(ts: float) -> str:
    """A UTC time as people read it in tables: 2026-11-23T16:00:00Z."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
