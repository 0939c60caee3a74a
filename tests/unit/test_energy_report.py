"""Report figures against hand-computed ones on a fixed set of samples."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from coordinator.power.energy import (
    Buckets,
    Reading,
    UsageBucket,
    asleep_intervals,
    bucketed,
    clip,
)
from coordinator.power.report import (
    CostModel,
    JobUse,
    NodeUse,
    budget,
    idle_power_w,
    period_bounds,
    report,
)
from coordinator.power.tariff import Rate

GIB = 2**30


def test_counters_are_preferred_and_a_drop_is_a_reset():
    readings = [
        Reading(0, 999.0, 100.0),
        Reading(1, 999.0, 150.0),  # +50 from the counter, not 999 W x 1 s
        Reading(2, 999.0, 20.0),  # reset: +20
        Reading(3, 500.0, None),  # no counter: 500 W x 1 s
        Reading(100, 500.0, None),  # after a gap: nothing
    ]
    buckets = bucketed(readings, width_s=60, max_gap_s=30)
    assert [(b.start, b.energy_j, b.awake_s, b.metered) for b in buckets] == [
        (0.0, 570.0, 3.0, True),
        (60.0, 0.0, 0.0, False),
    ]
    assert (buckets[0].power_sum_w, buckets[0].power_n) == (999.0 * 3 + 500.0, 4)


def test_intervals():
    assert clip([(5, 20), (0, 8), (30, 40), (50, 60)], 2, 35) == [(2, 20), (30, 35)]
    events = [(10, "sleep"), (12, "asleep"), (50, "wake"), (60, "resumed"), (70, "asleep")]
    assert asleep_intervals(events, end=100) == [(12, 60), (70, 100)]
    assert asleep_intervals([(1, "asleep"), (9, "failed")], end=100) == [(1, 9)]
    minutes = [
        UsageBucket(0, 60, power_sum_w=600, power_n=6),
        UsageBucket(60, 120, 0, 0, True, 99, 1),
        UsageBucket(120, 180, power_sum_w=120, power_n=6),
    ]
    assert idle_power_w(Buckets.of(minutes), [(70, 80)]) == 60.0


def fleet() -> list[NodeUse]:
    """One hour. n1: 100 W idle, 200 W while its job ran (600..1200 s), asleep 1800..3000 s."""
    awake = [*range(0, 1801, 10), *range(3000, 3601, 10)]
    readings = [Reading(float(t), 200.0 if 600 < t <= 1200 else 100.0) for t in awake]
    job = JobUse(
        id="j1",
        name="train",
        node="n1",
        cpus=2,
        gpus=0,
        mem_bytes=1 * GIB,
        started_at=600.0,
        finished_at=1200.0,
        energy_j=75_000.0,  # its own GPUs and CPU share, as the agent charged it
    )
    return [
        NodeUse(
            name="n1",
            cpus=4,
            mem_bytes=8 * GIB,
            buckets=Buckets.of(bucketed(readings, 60, 30)),
            power_events=[
                (1790.0, "sleep"),
                (1800.0, "asleep"),
                (2990.0, "wake"),
                (3000.0, "resumed"),
            ],
            jobs=[job],
        )
    ]


MODEL = CostModel(
    price_kwh=0.30, fixed_per_hour=lambda node: 0.5, sleep_power_w=5.0, idle_power_w=80.0
)


def test_node_figures_equal_the_hand_computed_ones():
    result = report(fleet(), MODEL, 0.0, 3600.0)
    node = result.nodes[0]
    # 60 x 10 s at 200 W + 120 x 10 s at 100 W awake before the sleep, 60 x 10 s at 100 W after
    assert node.kwh == pytest.approx(300_000 / 3.6e6)
    assert node.awake_h == pytest.approx(2400 / 3600)
    assert node.asleep_h == pytest.approx(1200 / 3600)
    assert node.busy_h == pytest.approx(600 / 3600)
    assert node.utilisation_pct == pytest.approx(25.0)
    assert node.idle_power_w == pytest.approx(100.0)  # learned: the samples outside the job
    assert node.saved_kwh == pytest.approx(1200 / 3600 * (100 - 5) / 1000)
    assert node.energy_cost == pytest.approx(300_000 / 3.6e6 * 0.30)
    assert node.fixed_cost == pytest.approx(0.5)
    assert node.cost == pytest.approx(0.025 + 0.5)


def test_job_and_fleet_figures_equal_the_hand_computed_ones():
    result = report(fleet(), MODEL, 0.0, 3600.0)
    (job,) = result.jobs
    assert job.share == 0.5  # 2 of 4 CPUs is more than 1 of 8 GiB
    assert job.kwh == pytest.approx(75_000 / 3.6e6)  # what the agent charged, not rescaled
    assert job.cost == pytest.approx(75_000 / 3.6e6 * 0.30)
    assert job.cpu_h == pytest.approx(2 * 600 / 3600)
    totals = result.totals
    assert totals.cost == pytest.approx(0.525)
    assert totals.saved_cost == pytest.approx(1200 / 3600 * 95 / 1000 * 0.30)
    assert totals.cpu_h_per_cost == pytest.approx((1200 / 3600) / 0.525)
    assert totals.gpu_h_per_cost == 0.0


def test_a_node_without_idle_samples_uses_the_configured_idle_power():
    node = NodeUse(name="n2", power_events=[(0.0, "asleep")])
    result = report([node], MODEL, 0.0, 3600.0).nodes[0]
    assert result.idle_power_w == 80.0
    assert result.saved_kwh == pytest.approx(1 * (80 - 5) / 1000)
    assert result.utilisation_pct is None


def test_unmeasured_energy_and_assumed_idle_power_are_said_with_the_figures():
    """A node without a power sensor shows 0 kWh beside a saving from the assumed idle
    power: the report says so instead of letting 0 read as a measurement."""
    unmetered = NodeUse(
        name="n2",
        buckets=Buckets.of(bucketed([Reading(float(t)) for t in range(0, 1801, 10)], 60, 30)),
        power_events=[(1800.0, "asleep")],
    )  # fmt: skip
    result = report([*fleet(), unmetered], MODEL, 0.0, 3600.0)
    assert [n.metered for n in result.nodes] == [True, False]
    assert [n.idle_assumed for n in result.nodes] == [False, True]
    assert (result.totals.unmetered_nodes, result.totals.assumed_idle_nodes) == (1, 1)
    assert result.caveats == (
        "1 of 2 nodes have no power sensor (RAPL or NVML): their energy is not measured "
        "and counts as 0 kWh",
        "saved kWh of 1 nodes is estimated from the assumed idle power ([cost] "
        "idle_power_w = 80 W), not from their own idle samples",
    )
    assert report(fleet(), MODEL, 0.0, 3600.0).caveats == ()


def test_budget_projects_the_pace_to_the_end_of_the_period():
    now = datetime(2026, 11, 16, tzinfo=UTC).timestamp()  # half of November gone
    nodes = [NodeUse(name="n1")]
    model = CostModel(price_kwh=0.3, fixed_per_hour=lambda _: 1.0)
    spent = budget(nodes, model, limit=500.0, period="month", now=now)
    assert spent.spent == pytest.approx(15 * 24)
    assert spent.projected == pytest.approx(30 * 24)
    assert spent.over
    assert not budget(nodes, model, limit=800.0, period="month", now=now).over


def test_period_bounds():
    now = datetime(2026, 11, 18, 15, 30, tzinfo=UTC).timestamp()  # a Wednesday
    day = datetime(2026, 11, 18, tzinfo=UTC).timestamp()
    assert period_bounds("day", now) == (day, day + 86400)
    monday = datetime(2026, 11, 16, tzinfo=UTC).timestamp()
    assert period_bounds("week", now) == (monday, monday + 7 * 86400)
    first = datetime(2026, 11, 1, tzinfo=UTC).timestamp()
    assert period_bounds("month", now) == (first, datetime(2026, 12, 1, tzinfo=UTC).timestamp())


def test_a_tariff_prices_each_sample_when_drawn_and_a_held_job_shows_its_saving():
    """100 W for two hours: the first at 0.2, the second at 0.1 (and 400 then 100 gCO2/kWh).
    The job was submitted at 0, held, and ran in the second hour on the whole node."""

    readings = [Reading(float(t), 100.0) for t in range(0, 7201, 10)]
    job = JobUse(
        id="j1",
        name="train",
        node="n1",
        cpus=4,
        gpus=0,
        mem_bytes=0,
        started_at=3600.0,
        finished_at=7200.0,
        energy_j=360_000.0,
        submitted_at=0.0,
    )
    node = NodeUse(name="n1", cpus=4, buckets=Buckets.of(bucketed(readings, 60, 30)), jobs=[job])
    model = CostModel(
        price_kwh=99.0,  # not used: the tariff prices every hour
        tariff=Rate((0.0, 3600.0), (0.2, 0.1)),
        carbon=Rate((0.0, 3600.0), (400.0, 100.0)),
    )
    result = report([node], model, 0.0, 7200.0)
    n, j, t = result.nodes[0], result.jobs[0], result.totals
    assert n.kwh == pytest.approx(0.2)
    # priced per minute bucket at its middle: the one step ending at 3600 s (10 s) falls in
    # the minute after the price change
    assert n.energy_cost == pytest.approx(0.1 * 0.2 + 0.1 * 0.1, rel=1e-3)
    first, second = 3590 * 100 / 3.6e6, 3610 * 100 / 3.6e6  # kWh priced at each rate
    assert n.energy_cost == pytest.approx(first * 0.2 + second * 0.1, rel=1e-9)
    assert n.co2_kg == pytest.approx((first * 400 + second * 100) / 1000, rel=1e-9)
    assert j.cost == pytest.approx(0.1 * 0.1)
    assert j.saved_cost == pytest.approx(0.1 * 0.2 - 0.1 * 0.1)  # against starting at 0
    assert j.saved_co2_kg == pytest.approx(0.1 * 300 / 1000)
    assert (t.saved_by_holds_cost, t.co2_kg) == (pytest.approx(0.01), pytest.approx(0.05, rel=5e-3))
    flat = report([node], CostModel(price_kwh=0.15), 0.0, 7200.0)
    assert flat.nodes[0].energy_cost == pytest.approx(0.2 * 0.15)
    assert flat.jobs[0].saved_cost == pytest.approx(0.0)
    assert flat.totals.co2_kg is None
    assert flat.nodes[0].co2_kg is None
