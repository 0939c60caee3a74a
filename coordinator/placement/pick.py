"""`dormouse pick`: where a stateless request (an inference call) should go now.

Every strategy (`placement.balance`) chooses among the same nodes: awake, passing the
placement filters, not in `avoid`. Least connections, the default, is the same filter, score
and select stages as job placement, without the queue or deadlines.
"""

from __future__ import annotations

import random
from collections.abc import Collection
from dataclasses import dataclass

from coordinator.placement import balance
from coordinator.placement.balance import BALANCE_FACTOR, Strategy
from coordinator.placement.filters import rejection
from coordinator.placement.model import ClusterSnapshot, Power, Request, free_capacity
from coordinator.placement.score import least_connections
from coordinator.placement.select import NodeIndex, could_ever_take_any
from coordinator.placement.state import ClusterState


@dataclass(frozen=True, slots=True)
class Picked:
    node: str
    connections: int  # active jobs + service connections: the least-connections score
    jobs: int
    util_pct: float
    free_gpus: tuple[int, ...]
    strategy: str = Strategy.LEAST_CONNECTIONS.value
    owner: bool | None = None  # affinity: the key's owner took it
    spilled: str | None = None  # affinity: why the owner did not


class Picker:
    """Built once per snapshot; `record`/`release` move a node's load as calls come and go,
    for a caller that keeps the picker (the benchmark's queue, a running coordinator)."""

    def __init__(
        self,
        cluster: ClusterSnapshot,
        *,
        avoid: Collection[str] = (),
        balance_factor: float = BALANCE_FACTOR,
        rng: random.Random | None = None,
        cursor: str | None = None,
    ) -> None:
        free = free_capacity(cluster)
        awake = [n for n in cluster.nodes if n.power is Power.AWAKE and n.name not in avoid]
        self._index = NodeIndex(awake, free)
        self._fleet = NodeIndex(cluster.nodes, dict(free))  # every node, for the reason
        self._nodes = {n.name: n for n in awake}
        self._names = sorted(self._nodes)
        self._factor = balance_factor
        self._rng = rng or random.Random(0)  # noqa: S311 - load spreading, not secrets
        self._ring: balance.Ring | None = None
        self._loads = {n: least_connections(self._nodes[n], free[n]) for n in self._names}
        self._total = sum(self._loads.values())
        self.cursor = cursor  # round-robin: the node picked last

    def load(self, name: str) -> int:
        """The least-connections score, kept here as calls are recorded and released."""
        return self._loads[name]

    def pick(
        self,
        request: Request,
        strategy: Strategy = Strategy.LEAST_CONNECTIONS,
        key: str | None = None,
    ) -> Picked | str:
        """The chosen node, or why none qualifies."""
        owner: bool | None = None
        spilled: str | None = None
        if strategy is Strategy.AFFINITY:
            if key is None:
                raise ValueError("the affinity strategy needs a key")
            found = self._affinity(request, key)
            name = None if found is None else found.node
            if found is not None:
                owner, spilled = found.owner, found.reason
        elif strategy is Strategy.ROUND_ROBIN:
            name = balance.next_in_turn(self._names, self.cursor, self._fits(request))
            self.cursor = name or self.cursor
        elif strategy is Strategy.P2C:
            name = balance.two_choices(
                self._names, self._fits(request), self._loads.__getitem__, self._rng
            )
        else:
            node = self._index.first(request)
            name = None if node is None else node.name
        if name is None:
            return self.why_none(request)
        free = self._index.free[name]
        return Picked(
            name,
            self.load(name),
            free.jobs,
            self._nodes[name].util_pct,
            tuple(sorted(free.gpus)),
            strategy.value,
            owner,
            spilled,
        )

    def record(self, name: str) -> None:
        """A call went to `name`: one more connection there until `release`."""
        self._index.adjust(name, +1)
        self._loads[name] += 1
        self._total += 1

    def release(self, name: str) -> None:
        self._index.adjust(name, -1)
        self._loads[name] -= 1
        self._total -= 1

    def _fits(self, request: Request) -> balance.Fits:
        nodes, free = self._nodes, self._index.free
        return lambda name: rejection(request, nodes[name], free[name]) is None

    def _affinity(self, request: Request, key: str) -> balance.Affinity | None:
        if self._ring is None:
            self._ring = balance.Ring(self._names)
        bound = balance.load_bound(self._total, len(self._names), self._factor)
        return balance.by_affinity(
            self._ring, key, self._fits(request), self._loads.__getitem__, bound
        )

    def why_none(self, request: Request) -> str:
        """From node shapes, not node by node, so a refusal is as quick as an answer."""
        known = len(self._fleet) > 0
        return _why_none(request, known, self._fleet.could_ever_take(request) > 0, self._index)


def pick(request: Request, cluster: ClusterSnapshot) -> Picked | str:
    return Picker(cluster).pick(request)


def pick_kept(request: Request, state: ClusterState) -> Picked | str:
    """Least connections read straight from a kept `ClusterState` (the running daemon's):
    the first fit in its awake index, O(log n), nothing rebuilt; a refusal is said from the
    shapes of its indexes, as `Picker.why_none` says it. The same answer as `pick` over the
    state's snapshot (a property test checks it)."""
    awake = state.read_index(Power.AWAKE)
    node = awake.first(request)
    if node is None:
        fleet = could_ever_take_any((state.index(p) for p in Power), request)
        return _why_none(request, bool(state.nodes), fleet, awake)
    free = state.free[node.name]
    return Picked(
        node.name,
        least_connections(node, free),
        free.jobs,
        node.util_pct,
        tuple(sorted(free.gpus)),
    )


def _why_none(request: Request, known: bool, fleet_could: bool, awake: NodeIndex) -> str:
    if not known:
        return "no nodes known"
    if not fleet_could:
        return "no node in the fleet could ever take this request"
    could = awake.could_ever_take(request)
    return f"no awake node has room now ({could} of {len(awake)} awake could take it)"
