"""A fleet's recent history written straight into a store, for the fleet-over-time API, the
console's browser tests and its benchmark: nodes that measure power (a sample every 10 s,
rolled up as the coordinator does) or not, one that slept five minutes (no samples, its
power events), jobs that ran, run and wait. Large fleets copy one node's rolled-up minutes."""

from __future__ import annotations

import dataclasses
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
from coordinator.store.models import rollup_hour, rollup_minute
from coordinator.store.power import PowerEvent
from shared.messages import Sample, TelemetryBatch
from tests.bench.fleet_data import Node as Stream

MIN = 60.0
HOUR = 3600.0
SLEEP_S = 300.0  # the sleeper's five minutes


@dataclass(frozen=True, slots=True)
class Fleet:
    start: float
    now: float
    nodes: Sequence[str]
    sleeper: str
    asleep: tuple[float, float]  # when it went quiet, when it was back
    sensorless: str  # a node with no power sensor


def _samples(  # noqa: PLR0917 - one node's run of samples
    node: str, start: float, end: float, seq: int, power: bool, gpus: int
) -> TelemetryBatch:
    """Every 10 s: a CPU figure and power (when it has a sensor); with `gpus`, the whole
    sample an 8-GPU server sends (`tests.bench.fleet_data`), so rollup rows have its size."""
    stream = Stream(node, gpus) if gpus else None
    samples = []
    for t in range(0, int(end - start), 10):
        if stream is None:
            metrics: dict[str, object] = {"cpu_util_pct": 20.0, "power_w": 200.0 + t % 50}
            sample = Sample(ts=start + t, metrics=metrics)
        else:
            sample = stream.next(start + t)
        if not power:
            sample = dataclasses.replace(
                sample, metrics={k: v for k, v in sample.metrics.items() if k != "power_w"}
            )
        samples.append(sample)
    return TelemetryBatch(node=node, seq_first=seq, samples=tuple(samples))


def write(
    engine: sa.Engine,
    names: Sequence[str],
    now: float,
    span_s: float,
    *,
    gpus: int = 0,
    days_before: int = 0,
) -> Fleet:
    """`names[0]` runs a job, `names[1]` slept 5 minutes in the middle, `names[2]` (when
    there is one) measures no power; a pending job asks for 2 GPUs. At most a few real
    nodes' samples are written; the rest copy `names[0]`'s minutes. `days_before`: every
    node also has hour rows for that many days before the span (copies of one of
    `names[0]`'s), for windows of weeks."""
    start = now - now % MIN - span_s
    mid = start + span_s / 2
    asleep = (mid - mid % MIN, mid - mid % MIN + SLEEP_S)
    sleeper, sensorless = names[1], names[min(2, len(names) - 1)]
    with engine.begin() as conn:
        first = start - days_before * 86400
        node_rows.save_nodes(conn, [NodeView(n, NodeState.ONLINE, first) for n in names])
        for node in names[:3]:
            power = node != sensorless
            end = now - now % MIN
            if node == sleeper:
                parts = [(start, asleep[0] - 30.0), (asleep[1], end)]
            else:
                parts = [(start, end)]
            seq = 0
            for a, b in parts:
                sample_rows.insert_batches(conn, [_samples(node, a, b, seq, power, gpus)])
                seq += int((b - a) // 10) + 1
        while rollup_rows.roll_up(conn, now, max_gap_s=30.0):
            pass
        _copy_minutes(conn, names[0], names[3:])
        if days_before:
            _hours_before(conn, names, start, days_before)
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


def _hours_before(conn: sa.Connection, names: Sequence[str], start: float, days: int) -> None:
    """An hour row of `names[0]`'s, copied to every node for each hour of `days` before
    `start`."""
    model = (
        conn.execute(sa.select(rollup_hour).where(rollup_hour.c.node == names[0]).limit(1))
        .mappings()
        .first()
    )
    assert model is not None, "the span holds no whole hour to copy"
    first = start - start % HOUR
    hours = [first - HOUR * (k + 1) for k in range(days * 24)]
    for i in range(0, len(names), 20):
        rows = [dict(model) | {"node": n, "bucket": b} for n in names[i : i + 20] for b in hours]
        conn.execute(sa.insert(rollup_hour), rows)


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
