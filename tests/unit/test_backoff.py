from __future__ import annotations

import random

from shared.backoff import Backoff


def test_delays_grow_to_the_cap_with_jitter_and_reset():
    backoff = Backoff(initial_s=1, max_s=8, rng=random.Random(1))
    delays = [backoff.next_delay() for _ in range(50)]
    ceilings = [min(8, 2**i) for i in range(50)]
    assert all(0 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    assert max(delays[10:]) > 4  # reaches well past the early ceilings
    assert len(set(delays)) == 50  # jittered, not lock-step
    backoff.reset()
    assert backoff.next_delay() <= 1
