"""Balancing strategies for stateless requests (`dormouse pick --strategy ...`), pure.

Every strategy chooses among the same nodes: awake, passing the placement filters, and not
in `avoid` (nodes the power policy is putting to sleep). They differ only in the choice:

* round-robin: the next feasible node after the cursor, in name order;
* affinity: consistent hashing with bounded loads (Mirrokni, Thorup, Zadimoghaddam 2018):
  the key's owner is the first feasible node clockwise from the key on a ring of virtual
  points; it takes the call unless that would lift its load over ceil(factor x the mean
  after the call), and then the next node on the ring that stays under it does. A node
  joining or leaving moves only the keys it owns (about 1/N);
* p2c: two random feasible nodes, the one with fewer connections wins.

Least connections, the default, is `NodeIndex.first` (`placement.pick`). Loads are the
least-connections score (jobs plus service connections), so all four read one number.
"""

from __future__ import annotations

import bisect
import hashlib
import math
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum

VNODES = 64  # ring points per node: more spread keys more evenly, at build cost
MEMO_KEYS = 4096  # walks kept per ring: hot keys walk far (they spill), and come back often
BALANCE_FACTOR = 1.25
P2C_TRIES = 32  # random draws before falling back to a scan for feasible nodes


class Strategy(StrEnum):
    LEAST_CONNECTIONS = "least-connections"
    ROUND_ROBIN = "round-robin"
    AFFINITY = "affinity"
    P2C = "p2c"


Fits = Callable[[str], bool]
Load = Callable[[str], int]


def key_hash(text: str) -> int:
    """A hash that is the same in every process (Python's `hash` is salted per process)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


class Ring:
    """The consistent-hash ring of a set of nodes, built once per snapshot.

    A key's walk is memoised as far as it has been followed (for `MEMO_KEYS` keys): a hot key
    that spills far along the ring pays for the walk once, then reads a list.
    """

    def __init__(self, names: Sequence[str], vnodes: int = VNODES) -> None:
        points = sorted((key_hash(f"{name}#{i}"), name) for name in names for i in range(vnodes))
        self._hashes = [h for h, _ in points]
        self._names = [n for _, n in points]
        self._count = len(set(names))
        self._memo: dict[str, tuple[list[str], Iterator[str]]] = {}

    def walk(self, key: str) -> Iterator[str]:
        """Each node once, clockwise from the key's point; the first is the key's owner."""
        memo = self._memo.get(key)
        if memo is None:
            if len(self._memo) >= MEMO_KEYS:
                del self._memo[next(iter(self._memo))]  # the oldest
            memo = self._memo[key] = ([], self._points(key))
        seen, rest = memo
        yield from seen
        for name in rest:
            seen.append(name)
            yield name

    def _points(self, key: str) -> Iterator[str]:
        if not self._names:
            return
        start = bisect.bisect(self._hashes, key_hash(key))
        seen: set[str] = set()
        total = len(self._names)
        for step in range(total):
            name = self._names[(start + step) % total]
            if name not in seen:
                seen.add(name)
                yield name
                if len(seen) == self._count:
                    return


@dataclass(frozen=True, slots=True)
class Affinity:
    node: str
    owner: bool  # the key's owner took it
    reason: str | None  # why it spilled, when it did


def load_bound(total: int, count: int, factor: float) -> int:
    """The most load any node may have after one more call: ceil(factor x mean after)."""
    return math.ceil(factor * (total + 1) / max(count, 1))


def by_affinity(ring: Ring, key: str, fits: Fits, load: Load, bound: int) -> Affinity | None:
    """The key's owner unless that would lift it over `bound`, else the next that stays
    under it; when every feasible node is at the bound, the least loaded of them. (Loads are
    read before the filters: past the owner, only a node under the bound needs them.)"""
    owner: str | None = None
    least: str | None = None
    for name in ring.walk(key):
        if owner is None:
            if not fits(name):
                continue
            owner = least = name
            if load(name) + 1 <= bound:
                return Affinity(name, owner=True, reason=None)
            continue
        carried = load(name)
        if carried + 1 <= bound and fits(name):
            why = f"owner {owner} has load {load(owner)}; the bound is {bound}"
            return Affinity(name, owner=False, reason=why)
        if least is not None and carried < load(least) and fits(name):
            least = name
    if owner is None or least is None:
        return None
    why = f"every feasible node is at the bound {bound}: the least loaded took it"
    return Affinity(least, owner=least == owner, reason=None if least == owner else why)


def next_in_turn(names: Sequence[str], cursor: str | None, fits: Fits) -> str | None:
    """The first feasible node after `cursor` in name order (`names` sorted), wrapping."""
    if not names:
        return None
    start = 0 if cursor is None else bisect.bisect_right(names, cursor)
    for step in range(len(names)):
        name = names[(start + step) % len(names)]
        if fits(name):
            return name
    return None


def two_choices(names: Sequence[str], fits: Fits, load: Load, rng: random.Random) -> str | None:
    """Of two random feasible nodes, the one with less load (then the lower name)."""
    chosen: list[str] = []
    for _ in range(P2C_TRIES):
        name = names[rng.randrange(len(names))] if names else None
        if name is not None and name not in chosen and fits(name):
            chosen.append(name)
            if len(chosen) == 2:
                break
    if len(chosen) < 2:  # few feasible nodes: find them all and draw from those
        feasible = [n for n in names if fits(n)]
        chosen = rng.sample(feasible, min(2, len(feasible)))
    return min(chosen, key=lambda n: (load(n), n), default=None)
