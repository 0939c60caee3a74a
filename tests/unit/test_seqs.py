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


def test_unfilled_gaps_are_asked_again_then_given_up():
    tracker = SeqTracker({"n1": -1}, retry_s=30, max_attempts=2)
    tracker.observe("n1", 5, 5, 0)
    assert tracker.due(10) == ([], [])
    assert tracker.due(31) == ([("n1", 0, 4)], [])
    assert tracker.due(62) == ([], [("n1", 0, 4)])
    assert tracker.missing("n1") == 0


def test_only_what_the_store_lacks_is_fresh():
    tracker = SeqTracker({"n1": 9})
    jump = tracker.observe("n1", 20, 24, 0)
    assert jump.fresh == ((20, 24),)
    partly = tracker.observe("n1", 8, 22, 1)  # 8-9 stored, 10-19 a gap, 20-22 stored
    assert (partly.fresh, partly.duplicates) == (((10, 19),), 5)
    assert tracker.observe("n1", 3, 6, 2).fresh == ()  # behind the watermark: nothing


def test_a_new_spool_starts_a_stream_above_the_old_one_without_asking_for_the_seqs_between():
    tracker = SeqTracker({"n1": 500})
    tracker.observe("n1", 510, 512, 0)  # 501-509 missing from the old stream
    start = 1_763_884_800_000
    reset = tracker.observe("n1", start, start + 4, 1, stream_first=start)
    assert (reset.reset_from, reset.abandoned, reset.new_gap) == (start, 9, None)
    assert reset.fresh == ((start, start + 4),)
    assert tracker.missing("n1") == 0
    assert tracker.lost_seqs == 9
    later = tracker.observe("n1", start + 5, start + 6, 2, stream_first=start)
    assert (later.reset_from, later.fresh) == (None, ((start + 5, start + 6),))


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
