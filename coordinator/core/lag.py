"""Sample-to-commit lag: quantiles over a recent window, and totals since start.

Prometheus reads the lag as a summary: its `quantile` series come from the window (what
`dormouse status` shows), its `_sum` and `_count` from running totals, so `rate(_sum) /
rate(_count)` stays right across scrapes however many samples the window forgot.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

QUANTILES = (0.5, 0.9, 0.99)


class LagStats:
    def __init__(self, window: int = 10_000) -> None:
        self._recent: deque[float] = deque(maxlen=window)
        self.sum_s = 0.0
        self.count = 0

    def add(self, lags_s: Iterable[float]) -> None:
        for lag in lags_s:
            self._recent.append(lag)
            self.sum_s += lag
            self.count += 1

    def quantiles(self) -> dict[float, float]:
        """Nearest-rank quantiles of the window; 0.0 for each while nothing was committed."""
        ordered = sorted(self._recent)
        if not ordered:
            return dict.fromkeys(QUANTILES, 0.0)
        last = len(ordered) - 1
        return {q: ordered[min(last, int(len(ordered) * q))] for q in QUANTILES}
