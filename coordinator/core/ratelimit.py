"""At most one log line per key per interval, saying how many events it stands for. Pure:
the caller passes the time and writes the line."""

from __future__ import annotations

from collections import Counter


class RateLimiter:
    def __init__(self, interval_s: float = 10.0) -> None:
        self._interval_s = interval_s
        self._last: dict[str, float] = {}
        self._suppressed: Counter[str] = Counter()

    def allow(self, key: str, now: float) -> int | None:
        """None to stay quiet; else how many events this line covers (itself included)."""
        last = self._last.get(key)
        if last is not None and now - last < self._interval_s:
            self._suppressed[key] += 1
            return None
        self._last[key] = now
        return 1 + self._suppressed.pop(key, 0)
