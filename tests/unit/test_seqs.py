from __future__ import annotations

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
