"""The leader role's gaps, found in what the store holds (`core.storegaps`), hand-checked."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from coordinator.core.storegaps import LOOKBACK_SEQS, Found, Mark, Newest, StoreGaps, missing

T0 = 1_000_000.0


def test_missing_names_each_hole_between_the_mark_and_the_highest():
    assert missing(10, [11, 12, 15, 16, 20]) == [(13, 14), (17, 19)]
    assert missing(10, [11, 12]) == []
    assert missing(10, []) == []
    assert missing(10, [14]) == [(11, 13)]


@given(st.sets(st.integers(1, 200)))
def test_missing_and_stored_cover_the_range_exactly(stored):
    seqs = sorted(stored)
    holes = missing(0, seqs)
    named = {s for lo, hi in holes for s in range(lo, hi + 1)}
    assert not named & stored
    assert named | stored == set(range(1, seqs[-1] + 1)) if seqs else not named


def test_a_new_node_is_scanned_from_its_lookback_and_settled_samples_only():
    gaps = StoreGaps(settle_s=10.0)
    marks = gaps.plan({"n1": Newest(5_000, 1_000, T0, T0)}, T0)
    assert marks == [Mark("n1", 5_000 - LOOKBACK_SEQS, T0 - 10.0)]
    young = gaps.plan(
        {"n2": Newest(1_050, 1_000, T0, T0)}, T0
    )  # never below its stream's first seq
    assert young == [Mark("n2", 999, T0 - 10.0)]


def test_a_quiet_node_is_scanned_up_to_its_newest_sample():
    gaps = StoreGaps(settle_s=10.0)
    gaps.plan({"n1": Newest(500, 0, T0, T0)}, T0)
    (mark,) = gaps.plan({"n1": Newest(500, 0, T0, T0)}, T0 + 10)  # nothing since for 10 s
    assert mark.horizon == T0  # its last holes are settled too


def test_a_contiguous_node_moves_its_mark_and_is_not_scanned_until_it_sends_more():
    gaps = StoreGaps()
    gaps.plan({"n1": Newest(500, 0, T0, T0)}, T0)
    assert gaps.contiguous("n1", Found(count=300, high=500))
    assert gaps.nodes["n1"].mark == 500
    assert gaps.plan({"n1": Newest(500, 0, T0 + 1, T0 + 1)}, T0 + 1) == []
    assert [m.above for m in gaps.plan({"n1": Newest(505, 0, T0 + 5, T0 + 5)}, T0 + 5)] == [500]
    assert not gaps.contiguous("n1", Found(count=3, high=505))  # 2 of 501..505 missing


def news(gaps: StoreGaps, t: float, late_s: float = 0.0) -> None:
    """Node n1's newest batch stored at T0 + t, `late_s` later than usual."""
    gaps.plan({"n1": Newest(400, 0, T0 + t - late_s, T0 + t)}, T0 + t)


def test_a_hole_is_asked_for_every_retry_and_never_given_up_on_the_clock():
    gaps = StoreGaps(retry_s=30.0, max_attempts=3)
    news(gaps, 0)  # mark 100
    seqs = [s for s in range(101, 401) if s not in (150, 151)]
    first = gaps.judge("n1", seqs)
    assert first.ask == [("n1", 150, 151)]
    assert gaps.nodes["n1"].mark == 149  # held below the open hole
    asks = {}
    for t in range(1, 200):
        news(gaps, t)
        verdict = gaps.judge("n1", seqs[48:])
        if verdict.ask:
            asks[t] = verdict.unanswered
    assert asks == {30: [], 60: [], 90: [("n1", 150, 151)], 180: []}  # then every 3 x 30 s
    assert (gaps.retries, gaps.unanswered, gaps.lost_seqs) == (4, 1, 0)
    assert gaps.missing("n1") == 2


def test_no_hole_is_asked_for_while_the_workers_are_behind():
    gaps = StoreGaps(retry_s=30.0, catch_up_s=15.0)
    news(gaps, 0)
    news(gaps, 1, late_s=60)  # the newest batch reached the store a minute late
    assert gaps.behind
    assert gaps.judge("n1", [s for s in range(101, 401) if s != 150]).ask == []
    news(gaps, 2)
    assert gaps.judge("n1", list(range(151, 401))).ask == [("n1", 150, 150)]


def test_a_hole_the_agent_no_longer_holds_is_lost_exactly_and_not_asked_again():
    gaps = StoreGaps(retry_s=30.0)
    news(gaps, 0)
    seqs = [s for s in range(101, 401) if not 150 <= s <= 159]
    assert gaps.judge("n1", seqs).ask == [("n1", 150, 159)]
    assert gaps.gone("n1", 140, 154) == 5  # 150..154 were missing
    assert (gaps.lost_seqs, gaps.given_up) == (5, 1)
    for t in range(1, 100):
        news(gaps, t)
        assert all(first >= 155 for _, first, _ in gaps.judge("n1", seqs[48:]).ask)
    assert gaps.missing("n1") == 5  # 155..159 still asked for


def test_a_hole_filled_in_part_keeps_its_attempts_for_the_rest():
    gaps = StoreGaps(retry_s=30.0, max_attempts=2)
    news(gaps, 0)
    gaps.judge("n1", [s for s in range(101, 401) if not 150 <= s <= 159])
    resent = [s for s in range(150, 401) if not 155 <= s <= 159]  # half of it came back
    news(gaps, 30)
    assert gaps.judge("n1", resent).ask == [("n1", 155, 159)]
    news(gaps, 60)
    assert gaps.judge("n1", resent[5:]).unanswered == [("n1", 155, 159)]


def test_a_filled_hole_clears_and_the_mark_moves_on():
    gaps = StoreGaps()
    gaps.plan({"n1": Newest(400, 0, T0, T0)}, T0)
    gaps.judge("n1", [s for s in range(101, 401) if s != 200])
    assert gaps.missing("n1") == 1
    assert gaps.contiguous("n1", Found(count=400 - 199, high=400))
    assert gaps.missing("n1") == 0
    assert gaps.nodes["n1"].mark == 400


def test_a_new_stream_keeps_the_old_ones_holes_asked_for_and_asks_nothing_between():
    gaps = StoreGaps(retry_s=30.0)
    news(gaps, 0)
    gaps.judge("n1", [s for s in range(101, 401) if s not in (200, 201, 202)])
    marks = gaps.plan({"n1": Newest(9_000_010, 9_000_000, T0 + 60, T0 + 60)}, T0 + 60)
    assert marks == [Mark("n1", 8_999_999, T0 + 50)]
    assert (gaps.stream_resets, gaps.lost_seqs, gaps.missing("n1")) == (1, 0, 3)
    assert gaps.old_ranges() == [("n1", 200, 202)]
    assert gaps.judge_old("n1", [(150, 199)]).ask == [("n1", 200, 202)]  # due again (60 s)
    assert gaps.judge_old("n1", [(201, 201)]).ask == []  # 201 came; not due again yet
    assert gaps.old_ranges() == [("n1", 200, 200), ("n1", 202, 202)]
    assert gaps.gone("n1", 202, 202) == 1  # the agent no longer holds 202
    assert gaps.judge_old("n1", [(201, 201)]).ask == []
    assert (gaps.old_ranges(), gaps.lost_seqs) == ([("n1", 200, 200)], 1)


def test_no_news_for_a_while_after_a_late_batch_is_not_a_backlog():
    gaps = StoreGaps(retry_s=30.0, catch_up_s=15.0)
    news(gaps, 0)
    news(gaps, 1, late_s=60)
    assert gaps.judge("n1", [s for s in range(101, 401) if s != 150]).ask == []
    gaps.plan({"n1": Newest(400, 0, T0 + 1 - 60, T0 + 1)}, T0 + 17)  # nothing new for 16 s
    assert not gaps.behind
    assert gaps.judge("n1", list(range(151, 401))).ask == [("n1", 150, 150)]
