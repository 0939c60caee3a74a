"""Chargeback, waste and budgets, pure, against figures worked out by hand.

The fleet: one 8-GPU node that appeared an hour into a four-hour window, hardware at 8 an
hour and fixed costs at 2 an hour; the price 0.10 per kWh until two hours in, 0.30 after.
Two accounts share it: "vision" 4 GPUs at full use for an hour across the price change,
"nlp" 4 GPUs at 3 % for the last two hours.
"""

from __future__ import annotations

import numpy as np
import pytest

from coordinator.core.jobstate import JobRecord
from coordinator.power import budgets, chargeback
from coordinator.power.chargeback import IDLE
from coordinator.power.report import CostModel, JobUse, NodeUse, report
from coordinator.power.tariff import Rate
from coordinator.power.waste import GpuReading, Held, WasteWatch, wasted_gpus

HOUR = 3600.0
T0 = 1_000_000 * HOUR
END = T0 + 4 * HOUR
TARIFF = Rate((T0, T0 + 2 * HOUR), (0.10, 0.30))  # a series: 0.10, then 0.30
MODEL = CostModel(
    price_kwh=0.15,
    tariff=TARIFF,
    hardware_per_hour=lambda _: 8.0,
    fixed_per_hour=lambda _: 2.0,
)


def job(job_id: str, account: str, hours: tuple[float, float], kwh: float, util: float):
    start_h, end_h = hours
    return JobUse(
        id=job_id,
        name=job_id,
        node="g1",
        cpus=8,
        gpus=4,
        mem_bytes=0,
        started_at=T0 + start_h * HOUR,
        finished_at=T0 + end_h * HOUR,
        energy_j=kwh * 3.6e6,
        account=account,
        user=f"{account}-user",
        gpu_util_pct=util,
    )


NODE = NodeUse(
    name="g1",
    cpus=64,
    gpus=8,
    first_seen=T0 + HOUR,
    jobs=(job("a", "vision", (1.5, 2.5), 1.0, 100.0), job("b", "nlp", (2.0, 4.0), 0.5, 3.0)),
)


def charged(nodes: list[NodeUse], by: str = "account"):
    fleet = chargeback.fleet_of(nodes, MODEL, T0, END)
    jobs, keys = chargeback.jobs_of(nodes, T0, END, by)
    return jobs, fleet, chargeback.charge(jobs, fleet, MODEL, T0, END), keys


def bill(idle_cost: str = "fleet", by: str = "account") -> dict[str, chargeback.Row]:
    jobs, fleet, charges, keys = charged([NODE], by)
    return {r.key: r for r in chargeback.rows(jobs, charges, keys, fleet, idle_cost)}


def test_two_accounts_sharing_a_node_are_charged_by_hand():
    rows = bill()
    vision, nlp = rows["vision"], rows["nlp"]
    # vision: 1 kWh at (0.5 h x 0.10 + 0.5 h x 0.30) / 1 h = 0.20; half the node for 1 h
    assert vision.cost.energy == pytest.approx(0.20)
    assert (vision.cost.hardware, vision.cost.fixed) == pytest.approx((4.0, 1.0))
    assert (vision.gpu_h_allocated, vision.gpu_h_used, vision.efficiency) == (4.0, 4.0, 1.0)
    # nlp: 0.5 kWh at 0.30; half the node for 2 h; 8 GPU-h held, 3 % of them used
    assert nlp.cost.energy == pytest.approx(0.15)
    assert (nlp.cost.hardware, nlp.cost.fixed) == pytest.approx((8.0, 2.0))
    assert nlp.gpu_h_allocated == 8.0
    assert (nlp.gpu_h_used, nlp.efficiency) == pytest.approx((0.24, 0.03))
    assert (vision.kwh, nlp.kwh) == pytest.approx((1.0, 0.5))


def test_what_no_job_held_is_the_fleets_and_runs_from_when_the_node_appeared():
    idle = bill()[IDLE]
    # the node is owned 3 h of the 4 (it appeared an hour in): 24 hardware, 6 fixed, of
    # which the jobs carried 12 and 3
    assert (idle.cost.hardware, idle.cost.fixed, idle.cost.energy) == pytest.approx(
        (12.0, 3.0, 0.0)
    )
    assert idle.jobs == 0
    assert sum(r.cost.total for r in bill().values()) == pytest.approx(
        report([NODE], MODEL, T0, END).totals.cost + 0.35  # + the jobs' unbucketed energy
    )


def test_shared_idle_cost_is_spread_by_what_each_account_spent():
    rows = bill("shared")
    assert IDLE not in rows
    direct = {"vision": 5.20, "nlp": 10.15}
    for account, spent in direct.items():
        assert rows[account].cost.idle == pytest.approx(15.0 * spent / 15.35)
    assert sum(r.cost.total for r in rows.values()) == pytest.approx(15.35 + 15.0)


def test_rows_by_user_node_and_job():
    assert set(bill(by="user")) == {"vision-user", "nlp-user", IDLE}
    assert bill(by="node")["g1"].jobs == 2
    assert bill(by="job")["b"].cost.hardware == pytest.approx(8.0)


def test_a_job_outside_the_window_is_charged_only_its_part_inside():
    early = NodeUse(name="g1", gpus=8, jobs=(job("c", "x", (-1.0, 1.0), 2.0, 50.0),))
    _, _, charge, _ = charged([early])
    assert charge.kwh.tolist() == pytest.approx([1.0])  # half its run, half its energy
    assert charge.gpu_h_allocated.tolist() == pytest.approx([4.0])
    assert charge.hardware.tolist() == pytest.approx([4.0])


def test_a_job_without_gpus_is_charged_its_cpu_share_and_unknown_use_is_not_efficiency():
    cpu_job = JobUse(
        id="c", name="c", node="g1", cpus=16, gpus=0, mem_bytes=0,
        started_at=T0 + HOUR, finished_at=T0 + 2 * HOUR, energy_j=None,
    )  # fmt: skip
    jobs, fleet, charge, keys = charged([NodeUse(name="g1", cpus=64, gpus=8, jobs=(cpu_job,))])
    assert charge.hardware.tolist() == pytest.approx([8.0 * 16 / 64])
    assert np.isnan(charge.gpu_h_used).all()
    row = chargeback.rows(jobs, charge, keys, fleet)[0]
    assert row.efficiency is None


def test_utilisation_by_label():
    jobs, fleet, _, _ = charged([NODE])
    busy = chargeback.busy_h(jobs, fleet, T0, END)
    (whole, gpu) = chargeback.utilisation(fleet, busy, {"g1": {"gpu": "a100"}})
    assert (whole.group, gpu.group) == ("fleet", "gpu=a100")
    assert whole.busy_h == pytest.approx(2.5)  # 1.5 h .. 4 h, the two jobs overlapping
    assert whole.of_total_pct == pytest.approx(100 * 2.5 / 3)


def test_busy_hours_merge_each_nodes_overlapping_jobs_and_no_other_nodes():
    def at(node: str, *runs: tuple[float, float]) -> NodeUse:
        return NodeUse(
            name=node, gpus=8,
            jobs=tuple(job(f"{node}{i}", "x", r, 0.0, 0.0) for i, r in enumerate(runs)),
        )  # fmt: skip

    nodes = [at("a", (0, 1), (0.5, 2), (3, 5)), at("b"), at("c", (-1, 0.25), (0.5, 0.75))]
    jobs, _ = chargeback.jobs_of(nodes, T0, END, "job")
    fleet = chargeback.fleet_of(nodes, MODEL, T0, END)
    assert chargeback.busy_h(jobs, fleet, T0, END).tolist() == pytest.approx([3.0, 0.0, 0.5])


def reading(ts: float, *utils: float) -> dict[str, GpuReading]:
    return {"g1": GpuReading(ts, dict(enumerate(utils)))}


def test_waste_is_flagged_exactly_after_waste_after_and_not_before():
    watch = WasteWatch(util_pct=5.0, after_s=1800.0)
    idle = [Held("b", "nlp", "g1", (0, 1))]
    assert watch.observe(idle, reading(T0, 2.0, 3.0), T0) == []
    assert watch.observe(idle, reading(T0 + 1799, 2.0, 3.0), T0 + 1799.9) == []
    (found,) = watch.observe(idle, reading(T0 + 1800, 1.0, 2.0), T0 + 1800)
    assert (found.job_id, found.since, found.gpus, found.util_pct) == ("b", T0, 2, 1.5)
    assert wasted_gpus([found]) == {"nlp": 2}
    assert "2 GPUs on g1 at 1.5 % for 30 min" in found.note(T0 + 1800)


def test_busy_gpus_are_never_waste_and_a_busy_sample_restarts_the_clock():
    watch = WasteWatch(util_pct=5.0, after_s=1800.0)
    busy = [Held("a", "vision", "g1", (0, 1))]
    assert watch.observe(busy, reading(T0, 90.0, 95.0), T0 + 3600) == []
    assert watch.observe(busy, reading(T0 + 10, 1.0, 1.0), T0 + 10) == []
    assert watch.observe(busy, reading(T0 + 20, 1.0, 20.0), T0 + 20) == []  # mean 10.5 %
    assert watch.observe(busy, reading(T0 + 30, 1.0, 1.0), T0 + 1820) == []  # low since +30
    assert len(watch.observe(busy, reading(T0 + 40, 1.0, 1.0), T0 + 1830)) == 1


def test_no_sample_is_no_evidence_and_cpu_jobs_are_not_watched():
    watch = WasteWatch(util_pct=5.0, after_s=60.0)
    held = [Held("b", "nlp", "g1", (0,)), Held("c", "nlp", "g1", ())]
    watch.observe(held, reading(T0, 0.0), T0)
    assert [w.job_id for w in watch.observe(held, {}, T0 + 120)] == ["b"]  # still low
    assert watch.observe([], {}, T0 + 200) == []  # it ended: forgotten
    assert watch.observe(held, {}, T0 + 300) == []


def test_budget_thresholds_and_who_is_over():
    spent = {"vision": 90.0, "nlp": 120.0, "": 500.0}
    limits = {"vision": 100.0, "nlp": 100.0, "ops": 50.0, "": 400.0}
    found = budgets.standings(spent, limits, T0)
    by = {s.account: s for s in found}
    assert (by["vision"].crossed(), by["nlp"].crossed(), by["ops"].crossed()) == (
        [80],
        [80, 100],
        [],
    )
    assert by[""].crossed() == [80, 100]
    over = budgets.over_budget(found)
    assert list(over) == ["nlp"]  # the fleet's own budget holds no account
    assert over["nlp"] == "account nlp has spent 120.00 of its budget 100.00 (120 %)"


def test_over_budget_holds_or_places_last_only_the_accounts_over():
    pending = [
        JobRecord(id=i, argv=("x",), submitted_at=T0, deadline=END, priority=5, account=a)
        for i, a in (("n1", "nlp"), ("n2", "nlp"), ("v1", "vision"))
    ]
    over = {"nlp": "account nlp has spent 120.00 of its budget 100.00 (120 %)"}
    jobs, held = budgets.placeable(pending, over, "warn", set())
    assert ([j.id for j in jobs], held) == (["n1", "n2", "v1"], {})
    jobs, held = budgets.placeable(pending, over, "hold", {"n2"})  # n2 released
    assert [j.id for j in jobs] == ["n2", "v1"]
    assert held == {"n1": over["nlp"]}
    jobs, held = budgets.placeable(pending, over, "deprioritise", set())
    assert held == {}
    assert [(j.id, j.deadline, j.priority) for j in jobs] == [
        ("n1", None, budgets.LAST),
        ("n2", None, budgets.LAST),
        ("v1", END, 5),
    ]
