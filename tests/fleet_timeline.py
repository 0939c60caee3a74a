"""A fleet's recent history written straight into a store, for the fleet-over-time API, the
console's browser tests and its benchmark: nodes that measure power (a sample every 10 s,
rolled up as the coordinator does) or not, one that slept five minutes (no samples, its
power events), jobs that ran, run and wait. Large fleets copy one node's rolled-up minutes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from coordinator.core.jobstate import JobRecord, JobState
from coordinator.core.nodestate import NodeState
from coordinator.core.registry import NodeView
from coordinator.store import jobs as job_rows
from coordinator.store import nodes as node_rows
from coordinator.store import power as power_rows
from coordinator.store import rollups as rollup_rows
from coordinator.store import samples as sample_rows
from coordinator.store.models import rollup_minute
from coordinator.store.power import PowerEvent
from shared.messages import Sample, TelemetryBatch

MIN = 60.0
SLEEP_S = 300.0  # the sleeper's five minutes


@dataclass(frozen=True, slots=True)
class Fleet:
    start: float
    now: float
    nodes: Sequence[str]
    sleeper: str
    asleep: tuple[float, float]  # when it went quiet, when it was back
    sensorless: str  # a node with no power sensor


def _samples(node: str, start: float, end: float, seq: int, power: bool) -> TelemetryBatch:
    return TelemetryBatch(
        node=node,
        seq_first=seq,
        samples=tuple(
            Sample(
                ts=start + t,
                metrics={"cpu_util_pct": 20.0} | ({"power_w": 200.0 + t % 50} if power else {}),
            )
            for t in range(0, int(end - start), 10)
        ),
    )


def write(engine: sa.Engine, names: Sequence[str], now: float, span_s: float) -> Fleet:
    """`names[0]` runs a job, `names[1]` slept 5 minutes in the middle, `names[2]` (when
    there is one) measures no power; a pending job asks for 2 GPUs. At most a few real
    nodes' samples are written; the rest copy `names[0]`'s minutes."""
    start = now - now % MIN - span_s
    mid = start + span_s / 2
    asleep = (mid - mid % MIN, mid - mid % MIN + SLEEP_S)
    sleeper, sensorless = names[1], names[min(2, len(names) - 1)]
    with engine.begin() as conn:
        node_rows.save_nodes(conn, [NodeView(n, NodeState.ONLINE, start) for n in names])
        for node in names[:3]:
            power = node != sensorless
            end = now - now % MIN
            if node == sleeper:
                parts = [(start, asleep[0] - 30.0), (asleep[1], end)]
            else:
                parts = [(start, end)]
            seq = 0
            for a, b in parts:
                sample_rows.insert_batches(conn, [_samples(node, a, b, seq, power)])
                seq += int((b - a) // 10) + 1
        while rollup_rows.roll_up(conn, now, max_gap_s=30.0):
            pass
        _copy_minutes(conn, names[0], names[3:])
        power_rows.log_events(
            conn,
            [
                PowerEvent(asleep[0] - 60.0, sleeper, "sleep", "idle for 15 min"),
                PowerEvent(asleep[0], sleeper, "asleep", "quiet after sleeping"),
                PowerEvent(asleep[1] - 30.0, sleeper, "wake", "a job asks for it (wol)"),
                PowerEvent(asleep[1], sleeper, "resumed", "back 30.0s after the wake", 30.0),
            ],
        )
        _jobs(conn, names, start, now)
    return Fleet(start, now, tuple(names), sleeper, asleep, sensorless)


def _copy_minutes(conn: sa.Connection, model: str, others: Sequence[str]) -> None:
    rows = [
        dict(r)
        for r in conn.execute(
            sa.select(rollup_minute).where(rollup_minute.c.node == model)
        ).mappings()
    ]
    for i in range(0, len(others), 50):
        conn.execute(
            sa.insert(rollup_minute), [r | {"node": n} for n in others[i : i + 50] for r in rows]
        )


def _jobs(conn: sa.Connection, names: Sequence[str], start: float, now: float) -> None:
    jobs = [
        JobRecord(id="job-done", argv=("train",), name="train", submitted_at=start, cpus=4,
                  gpus=1, state=JobState.SUCCEEDED, node=names[0], placed_at=start + 60,
                  started_at=start + 60, finished_at=start + 1800, deadline=start + 7200,
                  deadline_met=True),
        JobRecord(id="job-running", argv=("eval",), name="eval", submitted_at=now - 1200,
                  cpus=2, gpus=1, state=JobState.RUNNING, node=names[0], placed_at=now - 1100,
                  started_at=now - 1100, deadline=now + 3600),
        JobRecord(id="job-waiting", argv=("big",), name="big", submitted_at=now - 600, cpus=8,
                  gpus=2, deadline=now + 7200),
    ]  # fmt: skip
    for job in jobs:
        job_rows.insert(conn, job, job.submitted_at)
