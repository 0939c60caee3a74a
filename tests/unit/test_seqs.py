from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from coordinator.core.seqs import SeqTracker


def test_contiguous_batches_open_no_gap():
    tracker = SeqTracker({"n1": 9})
    assert tracker.observe("n1", 10, 14, 0).new_gap is None
    assert tracker.observe("n1", 15, 15, 0).new_gap is None
    assert tracker.missing("n1") == 0


def test_a_jump_opens_a_gap_and_resent_batches_fill_it():
    tracker = SeqTracker({"n1": 9})
    assert tracker.observe("n1", 20, 24, 0).new_gap == (10, 19)
    assert tracker.missing("n1") == 10
    fill = tracker.observe("n1", 12, 15, 1)
    assert (fill.new_gap, fill.duplicates) == (None, 0)
    assert tracker.missing("n1") == 6  # 10-11 and 16-19 remain


def test_duplicates_are_counted():
    tracker = SeqTracker({"n1": 9})
    assert tracker.observe("n1", 5, 12, 0).duplicates == 5  # 5-9 were stored already


def test_a_new_node_is_asked_for_everything_before_its_first_batch():
    tracker = SeqTracker({})
    assert tracker.observe("n2", 100, 104, 0).new_gap == (0, 99)
    assert tracker.observe("n3", 0, 4, 0).new_gap is None


def test_unfilled_gaps_are_asked_again_on_the_served_clock_and_never_lost_on_it():
    tracker = SeqTracker({"n1": -1}, retry_s=30, max_attempts=2)
    tracker.observe("n1", 5, 5, 0, stamp=0)
    tracker.due(0)
    for t in range(1, 32):  # live batches filed on time: the served clock runs
        tracker.observe("n1", 5 + t, 5 + t, t, stamp=t)
        again, unanswered = tracker.due(t)
        assert again == ([("n1", 0, 4)] if t == 30 else [])
    for t in range(32, 92):
        tracker.observe("n1", 5 + t, 5 + t, t, stamp=t)
        again, unanswered = tracker.due(t)
        assert (again, unanswered) == (([("n1", 0, 4)], [("n1", 0, 4)]) if t == 60 else ([], []))
    assert (tracker.missing("n1"), tracker.lost_seqs, tracker.unanswered) == (5, 0, 1)
    slow = [t for t in range(92, 200) if tracker.observe("n1", t + 5, t + 5, t, stamp=t)
            and tracker.due(t)[0]]  # fmt: skip
    assert slow == [120, 180]  # from now on every max_attempts x retry_s


def test_nothing_is_asked_and_no_deadline_runs_while_the_coordinator_is_behind():
    tracker = SeqTracker({"n1": 99}, retry_s=30, catch_up_s=15)
    tracker.observe("n1", 100, 104, 1000.0, stamp=999.0)  # the node's usual delay: 1 s
    tracker.due(1000.0)
    late = tracker.observe("n1", 110, 114, 1100.0, stamp=1010.0)  # 90 s late, a gap 105..109
    assert (late.new_gap, tracker.behind) == (None, True)
    for i, t in enumerate(range(1101, 1400, 10)):  # filing the backlog: still behind
        tracker.observe("n1", 115 + i, 115 + i, t, stamp=t - 80)
        assert tracker.due(t) == ([], [])
    assert tracker.served == 0.0  # no deadline ran
    tracker.observe("n1", 145, 145, 1500.0, stamp=1499.0)  # caught up
    assert tracker.due(1500.0)[0] == [("n1", 105, 109)]
    assert tracker.retries == 0  # the first asks, made only now


def test_a_gap_the_agent_no_longer_holds_is_lost_exactly_and_stored_if_it_comes_after_all():
    tracker = SeqTracker({"n1": 9})
    tracker.observe("n1", 20, 24, 0)  # 10..19 missing
    assert tracker.gone("n1", 5, 14) == 5  # 10..14: missing and gone; 5..9 were stored
    assert (tracker.lost_seqs, tracker.missing("n1")) == (5, 5)
    late = tracker.observe("n1", 12, 16, 1)  # it came after all (a late delivery)
    assert late.fresh == ((12, 16),)
    assert late.duplicates == 0
    assert (tracker.lost_seqs, tracker.recovered, tracker.missing("n1")) == (2, 3, 3)
    assert tracker.gone("n1", 30, 40) == 0  # nothing missing there: nothing lost


def test_a_new_stream_keeps_the_old_streams_gaps_and_takes_its_late_tail():
    tracker = SeqTracker({"n1": 500})
    tracker.observe("n1", 510, 512, 0)  # 501-509 missing from the old stream
    start = 1_763_884_800_000
    reset = tracker.observe("n1", start, start + 4, 1, stream_first=start)
    assert (reset.reset_from, reset.carried, reset.new_gap) == (start, 9, None)
    assert reset.fresh == ((start, start + 4),)
    assert (tracker.missing("n1"), tracker.lost_seqs) == (9, 0)  # still asked for
    assert tracker.due(2)[0] == []  # asked when opened; not due again yet
    tail = tracker.observe("n1", 513, 515, 3)  # the old process's last batch, delivered late
    assert (tail.fresh, tail.duplicates) == (((513, 515),), 0)
    resent = tracker.observe("n1", 501, 509, 4)
    assert (resent.fresh, tracker.missing("n1")) == (((501, 509),), 0)
    later = tracker.observe("n1", start + 5, start + 6, 5, stream_first=start)
    assert (later.reset_from, later.fresh) == (None, ((start + 5, start + 6),))


def test_a_forged_stream_cannot_make_the_real_agents_samples_duplicates():
    tracker = SeqTracker({"n1": 1_000})
    forged = 1_763_884_800_000
    tracker.observe("n1", forged, forged, 0, stream_first=forged)
    real = tracker.observe("n1", 1_001, 1_005, 1)  # the real agent goes on in its stream
    assert (real.fresh, real.duplicates) == (((1_001, 1_005),), 0)


def test_holes_a_restart_found_in_the_store_are_asked_for_at_once():
    tracker = SeqTracker({"n1": 900}, holes={"n1": [(100, 109), (500, 500)]})
    assert tracker.missing("n1") == 11
    assert tracker.due(0)[0] == [("n1", 100, 109), ("n1", 500, 500)]
    assert tracker.observe("n1", 100, 109, 1).fresh == ((100, 109),)


def test_only_what_the_store_lacks_is_fresh():
    tracker = SeqTracker({"n1": 9})
    jump = tracker.observe("n1", 20, 24, 0)
    assert jump.fresh == ((20, 24),)
    partly = tracker.observe("n1", 8, 22, 1)  # 8-9 stored, 10-19 a gap, 20-22 stored
    assert (partly.fresh, partly.duplicates) == (((10, 19),), 5)
    assert tracker.observe("n1", 3, 6, 2).fresh == ()  # behind the watermark: nothing


def test_a_new_nodes_stream_is_asked_for_from_its_start_only():
    tracker = SeqTracker({})
    start = 1_763_884_800_000
    first = tracker.observe("n2", start + 3, start + 4, 0, stream_first=start)
    assert (first.new_gap, first.reset_from) == ((start, start + 2), None)


def test_a_forged_jump_is_refused_and_moves_nothing():
    tracker = SeqTracker({"h4": 10}, max_jump=1000)
    forged = tracker.observe("h4", 2**63 - 10, 2**63 - 1, 0)
    assert forged.refused == "seq_jump"
    assert tracker.missing("h4") == 0
    assert tracker.observe("h4", 11, 12, 1).fresh == ((11, 12),)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 60), st.integers(1, 8)), max_size=30))
def test_no_seq_is_ever_fresh_twice_and_every_new_seq_is_fresh_once(batches):
    tracker = SeqTracker({"n": -1}, max_jump=10_000)
    stored: set[int] = set()
    for now, (first, count) in enumerate(batches):
        seen = tracker.observe("n", first, first + count - 1, float(now))
        fresh = {seq for lo, hi in seen.fresh for seq in range(lo, hi + 1)}
        assert not fresh & stored
        assert fresh == set(range(first, first + count)) - stored
        assert seen.duplicates == count - len(fresh)
        stored |= fresh


def test_a_fleet_gone_quiet_after_an_overload_is_not_a_backlog():
    """The last live batch came late, then nothing: after `catch_up_s` of silence the gaps
    are asked for (nothing is queued ahead of a resend any more)."""
    tracker = SeqTracker({"n1": 99}, catch_up_s=15)
    tracker.observe("n1", 100, 104, 1000.0, stamp=999.0)
    tracker.observe("n1", 110, 114, 1100.0, stamp=1010.0)  # 90 s late, a gap 105..109
    assert tracker.due(1105.0) == ([], [])  # behind, and batches came 5 s ago
    assert tracker.due(1116.0)[0] == [("n1", 105, 109)]
