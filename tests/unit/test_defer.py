"""Holding jobs for a cheaper window: hand-computed, pure and through the simulator."""

from __future__ import annotations

import dataclasses

import pytest

from coordinator.placement.model import Job, Request
from coordinator.power.defer import DeferPolicy, Fleet, Holds, cheapest_start, plan_start
from coordinator.power.tariff import parse_rate
from coordinator.settings import Cost, parse_fraction_or_auto
from coordinator.sim.engine import POLICIES, Simulation
from coordinator.sim.metrics import hold_bound, summarise
from coordinator.sim.trace import TraceJob
from tests.unit.test_simulator import POLICY, kind
from tests.unit.test_tariff import day_night

H = 3600.0
RATE = parse_rate(day_night(0.2, 0.1), "tou.csv")  # 08:00-20:00 twice the night price
NO_KEEP = DeferPolicy(keep_slack=0.0, fill=1.0)


def job(
    submit: float, runtime: float, deadline: float | None, gpus: int = 1, id_: str = "j"
) -> Job:
    return Job(
        id=id_,
        request=Request(cpus=1, gpus=gpus),
        runtime_s=runtime,
        submitted_at=submit,
        deadline=deadline,
    )


def test_a_job_that_fits_the_night_is_held_until_it_starts():
    """19:00, 2 h of work, due at 05:00: starting at 20:00 costs 2 x 0.1 instead of
    0.2 + 0.1, a third less, and ends at 22:00."""
    hold = plan_start(job(19 * H, 2 * H, 29 * H), RATE, 19 * H, 120, NO_KEEP)
    assert hold is not None
    assert hold.until == 20 * H
    assert "33% lower" in hold.reason
    assert "120s for a wake" in hold.reason


def test_a_job_whose_slack_is_too_small_starts_at_once():
    # 2 h of work with 3 min of slack, less the 120 s margin: a minute later moves a minute
    # into the night, under 1 % cheaper (min_saving is 5 %)
    tight = job(19 * H, 2 * H, 21.05 * H)
    assert plan_start(tight, RATE, 19 * H, 120, NO_KEEP) is None
    # with room to 20:00 + 2 h + 120 s it waits for 20:00
    roomy = job(19 * H, 2 * H, 22.05 * H)
    assert plan_start(roomy, RATE, 19 * H, 120, NO_KEEP).until == 20 * H
    # a margin learned longer than the room: a partial hold at most (start at the latest)
    assert plan_start(roomy, RATE, 19 * H, 400, NO_KEEP).until == 22.05 * H - 2 * H - 400


def test_kept_slack_minimum_saving_undeadlined_and_max_defer():
    late = job(19 * H, 2 * H, 29 * H)
    keep = dataclasses.replace(NO_KEEP, keep_slack=0.99)  # 8 h of slack, all but 5 min kept
    assert plan_start(late, RATE, 19 * H, 0, keep) is None
    picky = dataclasses.replace(NO_KEEP, min_saving=0.4)  # a third is not enough
    assert plan_start(late, RATE, 19 * H, 0, picky) is None
    open_ended = job(19 * H, 2 * H, None)
    assert plan_start(open_ended, RATE, 19 * H, 0, NO_KEEP) is None
    anyway = dataclasses.replace(NO_KEEP, undeadlined=True, max_defer_s=0.5 * H)
    assert plan_start(open_ended, RATE, 19 * H, 0, anyway).until == 19.5 * H  # no later
    anyway = dataclasses.replace(anyway, max_defer_s=2 * H)
    assert plan_start(open_ended, RATE, 19 * H, 0, anyway).until == 20 * H
    assert plan_start(late, RATE, 19 * H, 0, dataclasses.replace(NO_KEEP, by="off")) is None


def test_the_cheapest_start_of_a_long_job_is_found_among_the_rate_changes():
    """07:00, 10 h of work, due in 30 h: any start from 20:00 runs wholly at night."""
    hold = plan_start(job(7 * H, 10 * H, 37 * H), RATE, 7 * H, 0, NO_KEEP)
    assert hold is not None
    assert hold.until == 20 * H


def test_holds_book_the_fleet_so_a_cheap_hour_is_not_promised_twice():
    """One GPU in the fleet: the first job gets 20:00-22:00, the second the next cheap
    slot that is free (22:00), the third has nothing cheaper before its latest start."""
    holds = Holds(RATE, NO_KEEP)
    jobs = [job(19 * H, 2 * H, 40 * H, id_="a"), job(19 * H, 2 * H, 40 * H, id_="b")]
    jobs.append(job(19 * H, 2 * H, 23.5 * H, id_="c"))
    ready, held = holds.split(jobs, 19 * H, 0, lambda: Fleet(cpus=8, gpus=1))
    assert held["a"].until == 20 * H
    assert held["b"].until == 22 * H
    assert [j.id for j in ready] == ["c"]
    # a held job is released when due, and its booking with it
    ready, held = holds.split(jobs[:2], 20 * H, 0, lambda: Fleet(cpus=8, gpus=1))
    assert [j.id for j in ready] == ["a"]
    assert list(held) == ["b"]
    # running work counts: a GPU busy until 23:00 leaves no room for a new one at 20:00-22:00
    busy = Holds(RATE, NO_KEEP)
    _, held = busy.split([jobs[0]], 19 * H, 0, lambda: Fleet(8, 1, [(23 * H, 1, 1)]))
    assert held["a"].until == 23 * H


def test_a_hold_ends_early_when_the_wake_margin_grows_past_it():
    holds = Holds(RATE, NO_KEEP)
    late = job(19 * H, 2 * H, 22.5 * H)
    _, held = holds.split([late], 19 * H, 60, lambda: Fleet(8, 8))
    assert held
    ready, held = holds.split([late], 19.5 * H, 3000, lambda: Fleet(8, 8))
    assert ready == [late]
    assert not held


def trace_job(id_: str, submit: float, runtime: float, deadline: float) -> TraceJob:
    return TraceJob(id_, submit, runtime, 1, 1, 0, deadline)


def test_the_simulator_holds_a_job_for_the_night_and_meets_its_deadline():
    """The node sleeps over the evening; the job waits for 20:00, the node is woken (10 s)
    and the job ends by 22:00:10, well before 05:00. dormouse-flat runs it at 19:00 and pays
    an hour at the day price."""
    trace = [trace_job("a", 19 * H, 2 * H, 29 * H)]
    defer = DeferPolicy(keep_slack=0.25, fill=1.0)  # one node: a half would hold nothing
    runs = {
        name: Simulation(trace, [kind()], POLICIES[name], POLICY, tariff=RATE, defer=defer).run()
        for name in ("dormouse", "dormouse-flat")
    }
    held, flat = runs["dormouse"].jobs[0], runs["dormouse-flat"].jobs[0]
    assert (held.start_s, held.end_s) == (20 * H + 10, 22 * H + 10)
    assert (flat.start_s, flat.end_s) == (19 * H, 21 * H)
    ours, peer = summarise(runs["dormouse"]), summarise(runs["dormouse-flat"], runs["dormouse"].end)
    assert ours.deadline_hits_pct == peer.deadline_hits_pct == 100.0
    assert (ours.held, peer.held) == (1, 0)
    kwh = 1 / 3.6e6
    # idle 100 s at 100 W and asleep 3,500 s at 10 W at the day price, waking 10 s at 100 W,
    # busy 2 h at 200 W at the night price
    day, night = (100 * 100 + 3500 * 10) * kwh * 0.2, (10 * 100 + 7200 * 200) * kwh * 0.1
    assert ours.energy_cost == pytest.approx(day + night)
    # busy an hour at each price, then idle (the run has ended) to the same end, 22:00:10
    assert peer.energy_cost == pytest.approx(3600 * 200 * kwh * 0.3 + 3610 * 100 * kwh * 0.1)


def test_the_cheapest_start_before_a_deadline_by_hand():
    # 18:00, 2 h, latest start 22:00: 20:00 costs 2 x 0.1 (18:00 would cost 2 x 0.2)
    assert cheapest_start(RATE, 18 * H, 22 * H, 2 * H) == 20 * H
    # 07:00, 2 h, latest start 11:00: at once costs 0.1 + 0.2, any later start 0.4
    assert cheapest_start(RATE, 7 * H, 11 * H, 2 * H) == 7 * H
    # no room to move (latest before earliest): at once
    assert cheapest_start(RATE, 19 * H, 18 * H, 2 * H) == 19 * H


def test_the_hold_bound_by_hand():
    """Two 1-GPU jobs on 8-GPU nodes, deadline 3 x runtime. 07:00 + 2 h: at once (0.3)
    is cheapest; 18:00 + 2 h: at once 0.4, at 20:00 0.2. Together 0.7 -> 0.5: 28.6 %
    lower. A job without a deadline is not held (it adds its cost to both sides)."""
    node = kind(gpus=8)
    jobs = [
        TraceJob("a", 7 * H, 2 * H, 1, 1, 0, 13 * H),
        TraceJob("b", 18 * H, 2 * H, 1, 1, 0, 24 * H),
    ]
    assert hold_bound(jobs, RATE, node).pct == pytest.approx(100 * (1 - 0.5 / 0.7))
    free = TraceJob("c", 18 * H, 2 * H, 1, 1, 0, None)  # 0.4 at once, and held never
    three = hold_bound([*jobs, free], RATE, node)
    assert three.pct == pytest.approx(100 * (1 - 0.9 / 1.1))
    # in money: each 1-GPU job is an eighth of a 200 W node, 25 W for 2 h = 0.05 kWh an hour
    # at the rate's mean (0.3 + 0.4 + 0.4 = 1.1 at once, 0.9 at best, per 2 h x 0.05 kWh)
    assert (three.at_once, three.best) == pytest.approx((1.1 * 25 / 1000, 0.9 * 25 / 1000))
    # a policy that cut its fleet's cost by half the room took half the bound
    assert three.captured_pct(10.0 - 0.0025, 10.0) == pytest.approx(50.0)
    # shares: an 8-GPU job weighs 8 of the 1-GPU one
    big = TraceJob("d", 18 * H, 2 * H, 8, 8, 0, 24 * H)
    assert hold_bound([jobs[0], big], RATE, node).pct == pytest.approx(
        100 * (1 - (0.3 + 8 * 0.2) / (0.3 + 8 * 0.4))
    )


def test_jobs_released_together_wake_one_node_not_two_and_cost_no_energy():
    """Two 2-GPU nodes, both asleep by 19:00 (a minute's job at 17:00, and one at 23:00 so
    that both runs end alike).
    Two 1-GPU jobs of 2 h arrive at 19:00 and 19:00:05, due the next day. Without holds the
    first wakes n0 and the second waits for n0 (it is on its way). With holds both wait for
    20:00 and are released in one pass: least connections would wake n1 for the second (an
    empty sleeper outranks the one this pass wakes), keeping a second node awake through its
    whole run; the pass wakes n0 only, and the kilowatt-hours are the no-hold run's exactly,
    an hour later and cheaper."""
    trace = [
        TraceJob("warm", 17 * H, 60, 1, 1, 0, None),
        TraceJob("a", 19 * H, 2 * H, 1, 1, 0, 40 * H),
        TraceJob("b", 19 * H + 5, 2 * H, 1, 1, 0, 40 * H),
        TraceJob("last", 23 * H, 60, 1, 1, 0, None),  # both runs end alike, every node asleep
    ]
    fleet = [kind(count=2, gpus=2, cpus=8)]
    runs = {
        name: Simulation(trace, fleet, POLICIES[name], POLICY, tariff=RATE, defer=NO_KEEP).run()
        for name in ("dormouse", "dormouse-no-holds")
    }
    held, free = runs["dormouse"], runs["dormouse-no-holds"]
    starts = {r.trace.id: r.start_s for r in held.jobs}
    assert (starts["a"], starts["b"]) == (20 * H + 10, 20 * H + 10)  # n0 woken at 20:00 (10 s)
    assert {r.trace.id: r.start_s for r in free.jobs}["b"] == 19 * H + 10  # waited for n0
    assert held.wakes == free.wakes == 2  # n0 for a and b, and at 23:00: n1 never woke
    assert held.end == free.end
    ours, twin = summarise(held), summarise(free)
    assert ours.held == 2
    assert ours.energy_kwh == pytest.approx(twin.energy_kwh)
    assert ours.energy_cost < twin.energy_cost


def test_a_job_run_as_parts_is_held_whole_or_not_at_all():
    """A 2-GPU job on two 1-GPU nodes runs as two parts and ends with its last. Holds book
    it whole: with half the fleet bookable (fill 0.5) neither part is held (one part held
    while the other runs gains nothing: the job still ends with the later part); with the
    whole fleet bookable both wait for 20:00 together."""
    trace = [TraceJob("wide", 19 * H, 2 * H, 2, 2, 0, 40 * H)]
    fleet = [kind(count=2)]
    for fill, start in ((0.5, 19 * H), (1.0, 20 * H + 10)):
        defer = dataclasses.replace(NO_KEEP, fill=fill)
        run = Simulation(trace, fleet, POLICIES["dormouse"], POLICY, tariff=RATE, defer=defer).run()
        (job,) = run.jobs
        assert (job.parts, job.start_s, job.end_s) == (2, start, start + 2 * H)
        assert run.held == (fill == 1.0)


def test_the_sized_knobs_follow_the_square_root_of_the_fleet():
    """Half the fleet bookable and a quarter of the slack kept at 112 GPUs (the old fixed
    defaults); what holds leave for work that will not wait shrinks as the square root of
    the fleet grows; a number set in the config is kept as it is."""
    auto = DeferPolicy()
    assert (auto.sized(112).fill, auto.sized(112).keep_slack) == pytest.approx((0.5, 0.25))
    big = auto.sized(448)  # 4x the GPUs: half the spread, relative to the fleet
    assert (big.fill, big.keep_slack) == pytest.approx((0.75, 0.125))
    assert (auto.sized(8).fill, auto.sized(8).keep_slack) == (0.25, 0.25)  # floors
    assert auto.sized(100_000).fill == 0.9
    assert auto.sized(None) == auto.sized(112)  # `dormouse submit`: no fleet known
    assert NO_KEEP.sized(10_000) == NO_KEEP
    # a fill set to 0 books nothing: no hold at all, even with the whole fleet free
    none_bookable = Holds(RATE, DeferPolicy(keep_slack=0.0, fill=0.0))
    _, held = none_bookable.split([job(19 * H, 2 * H, 40 * H)], 19 * H, 0, lambda: Fleet(8, 8))
    assert held == {}
    # planning books against the fleet it is given: one 1-GPU job fits a 4-GPU fleet at
    # fill 0.25 only when nothing else is booked
    holds = Holds(RATE, DeferPolicy(keep_slack=0.0))
    jobs = [job(19 * H, 2 * H, 40 * H, id_="a"), job(19 * H, 2 * H, 40 * H, id_="b")]
    _, held = holds.split(jobs, 19 * H, 0, lambda: Fleet(cpus=32, gpus=4))
    assert held["a"].until == 20 * H
    assert held["b"].until == 22 * H  # 20:00-22:00 is full at a quarter of 4 GPUs


def test_the_config_takes_auto_or_a_fraction_for_the_sized_knobs():
    assert Cost().defer_policy().fill is None
    assert parse_fraction_or_auto("Auto") == "auto"
    assert parse_fraction_or_auto(0.4) == 0.4
    with pytest.raises(ValueError, match="expected auto or a fraction"):
        parse_fraction_or_auto("most")
    fixed = dataclasses.replace(Cost(), defer_fill=0.4, defer_keep_slack=0.1).defer_policy()
    assert (fixed.fill, fixed.keep_slack) == (0.4, 0.1)
