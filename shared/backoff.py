"""Exponential backoff with full jitter, for reconnecting to the broker forever."""

from __future__ import annotations

import random


class Backoff:
    def __init__(
        self, initial_s: float = 0.5, max_s: float = 30.0, rng: random.Random | None = None
    ) -> None:
        self._initial_s, self._max_s = initial_s, max_s
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not secrecy
        self._attempt = 0

    def next_delay(self) -> float:
        """A delay uniform in [0, min(max, initial * 2**attempt)] (AWS's "full jitter")."""
        ceiling = min(self._max_s, self._initial_s * 2**self._attempt)
        self._attempt = min(self._attempt + 1, 32)
        return self._rng.uniform(0, ceiling)

    def reset(self) -> None:
        self._attempt = 0
