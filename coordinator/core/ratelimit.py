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


class Outage:
    """One line when a dependency goes away, a reminder at most every `remind_s` while it
    stays away, and one when it is back: not a line per failed attempt. Pure."""

    def __init__(self, what: str, remind_s: float = 60.0) -> None:
        self._what, self._remind_s = what, remind_s
        self._since: float | None = None
        self._said_at = 0.0
        self._failures = 0

    def failed(self, reason: str, now: float) -> str | None:
        self._failures += 1
        if self._since is None:
            self._since = self._said_at = now
            return f"{self._what} postponed: {reason}; retrying quietly until it works"
        if now - self._said_at >= self._remind_s:
            self._said_at = now
            return (
                f"{self._what} still postponed after {now - self._since:.0f}s "
                f"({self._failures} attempts): {reason}"
            )
        return None

    def succeeded(self, now: float) -> str | None:
        if self._since is None:
            return None
        said = f"{self._what} running again after {now - self._since:.0f}s"
        self._since, self._failures = None, 0
        return said
