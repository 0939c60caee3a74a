"""The spool: durable seqs, ordered replay, resends, retention, the size cap."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.spool import Spool, SpooledBatch
from shared.clock import ManualClock
from shared.codec import decode, encode
from shared.topics import Kind
from tests import factories

ORIGIN = int(factories.TS * 1000)  # the first seq of a spool created at factories.TS


@pytest.fixture
def clock():
    return ManualClock(factories.TS)


def open_spool(tmp_path, clock, **kw) -> Spool:
    return Spool(tmp_path / "spool", "gpu-01", clock, **kw)


def fill(spool: Spool, count: int) -> list[int]:
    return [spool.append(factories.sample(factories.TS + i)) for i in range(count)]


def drain(spool: Spool) -> list[int]:
    seqs: list[int] = []
    while (batch := spool.next_unsent()) is not None:
        seqs += range(batch.seq_first, batch.seq_last + 1)
        spool.mark_sent(batch)
    return seqs


def test_seqs_increase_and_survive_reopening(tmp_path, clock):
    spool = open_spool(tmp_path, clock)
    assert fill(spool, 3) == [ORIGIN, ORIGIN + 1, ORIGIN + 2]
    spool.close()
    spool = open_spool(tmp_path, clock)
    assert not spool.unclean
    assert fill(spool, 2) == [ORIGIN + 3, ORIGIN + 4]
    assert drain(spool) == [ORIGIN, ORIGIN + 1, ORIGIN + 2, ORIGIN + 3, ORIGIN + 4]


def test_a_new_spool_starts_a_stream_at_the_clock_in_milliseconds(tmp_path, clock):
    spool = open_spool(tmp_path, clock)
    assert spool.created
    assert spool.stream_first == spool.next_seq == int(factories.TS * 1000)
    fill(spool, 2)
    assert spool.next_unsent().stream_first == ORIGIN
    spool.close()
    reopened = open_spool(tmp_path, clock)
    assert not reopened.created
    assert reopened.stream_first == ORIGIN


def test_a_lost_spool_never_reuses_seqs(tmp_path, clock):
    """Delete the spool after a day of 1 Hz samples: the new one starts above them all."""
    spool = open_spool(tmp_path, clock)
    last = fill(spool, 86_400 // 100)[-1]
    spool.close()
    for path in (tmp_path / "spool").iterdir():
        path.unlink()
    clock.advance(86_400)
    fresh = open_spool(tmp_path, clock)
    assert fresh.append(factories.sample()) > last
    assert fresh.stream_first > last


def test_a_spool_from_before_streams_keeps_its_seqs(tmp_path, clock):
    spool = open_spool(tmp_path, clock)
    spool._db.execute("DELETE FROM meta")
    spool._db.execute("INSERT INTO meta VALUES ('next_seq', 41)")
    spool.close()
    legacy = open_spool(tmp_path, clock)
    assert (legacy.stream_first, legacy.append(factories.sample())) == (0, 41)
    assert legacy.next_unsent().stream_first == 0


def test_seq_is_not_reused_after_everything_was_trimmed(tmp_path, clock):
    spool = open_spool(tmp_path, clock, keep_s=10)
    fill(spool, 3)
    drain(spool)
    clock.advance(120)
    fill(spool, 1)  # runs the retention delete: rows 0-2 go
    spool.close()
    assert open_spool(tmp_path, clock).append(factories.sample()) == ORIGIN + 4


def test_unsent_replay_in_order_and_sent_is_not_replayed(tmp_path, clock):
    spool = open_spool(tmp_path, clock)
    fill(spool, 4)
    batch = spool.next_unsent()
    assert (batch.seq_first, batch.seq_last) == (ORIGIN, ORIGIN + 3)
    assert batch.message().samples[2] == factories.sample(factories.TS + 2)
    assert spool.next_unsent().seq_first == ORIGIN  # not acknowledged yet: offered again
    spool.mark_sent(batch)
    assert spool.next_unsent() is None
    fill(spool, 1)
    assert spool.next_unsent().seq_first == ORIGIN + 4


def test_batches_stay_under_the_codec_caps(tmp_path, clock):
    spool = open_spool(tmp_path, clock)
    fill(spool, 3000)
    sizes = []
    while (batch := spool.next_unsent()) is not None:
        sizes.append(len(batch.bodies))
        assert batch.payload() == encode(batch.message())  # and raises if it were too big
        spool.mark_sent(batch)
    assert sum(sizes) == 3000
    assert len(sizes) > 1


def test_resend_serves_sent_samples_in_range(tmp_path, clock):
    spool = open_spool(tmp_path, clock)
    fill(spool, 10)
    drain(spool)
    batches = list(spool.resend(ORIGIN + 3, ORIGIN + 6))
    assert [(b.seq_first, b.seq_last) for b in batches] == [(ORIGIN + 3, ORIGIN + 6)]
    assert next(iter(spool.resend(ORIGIN + 8, ORIGIN + 100))).seq_last == ORIGIN + 9
    assert list(spool.resend(ORIGIN + 50, ORIGIN + 60)) == []


def test_sent_samples_are_kept_for_keep_s_then_expire(tmp_path, clock):
    spool = open_spool(tmp_path, clock, keep_s=3600)
    fill(spool, 5)
    drain(spool)
    clock.advance(3599)
    fill(spool, 1)
    assert len(next(iter(spool.resend(ORIGIN, ORIGIN + 4))).bodies) == 5
    clock.advance(120)
    fill(spool, 1)
    assert list(spool.resend(ORIGIN, ORIGIN + 4)) == []
    assert spool.next_unsent().seq_first == ORIGIN + 5  # unsent samples never expire by age


def test_size_cap_drops_oldest_and_reports_unsent_losses(tmp_path, clock):
    one = len(msgpack.packb(factories.sample().to_wire(), use_bin_type=True))
    spool = open_spool(tmp_path, clock, max_bytes=10 * one)
    fill(spool, 3)
    drain(spool)  # 0-2 sent: dropping them loses nothing
    fill(spool, 12)  # 15 held, cap 10: 0-4 go, of which 3 and 4 were never sent
    assert spool.bytes <= 10 * one
    assert spool.dropped_unreported == 2
    batch = spool.next_unsent()
    assert (batch.seq_first, batch.spool_dropped) == (ORIGIN + 5, 2)
    spool.mark_sent(batch)
    assert spool.dropped_unreported == 0


def test_dropped_count_survives_a_restart(tmp_path, clock):
    one = len(msgpack.packb(factories.sample().to_wire(), use_bin_type=True))
    spool = open_spool(tmp_path, clock, max_bytes=2 * one)
    fill(spool, 5)
    spool.close()
    assert open_spool(tmp_path, clock, max_bytes=2 * one).next_unsent().spool_dropped == 3


def test_a_gap_splits_batches(tmp_path, clock):
    spool = open_spool(tmp_path, clock)
    fill(spool, 6)
    spool._db.execute("DELETE FROM samples WHERE seq = ?", (ORIGIN + 2,))
    batches = spool.resend(ORIGIN, ORIGIN + 5)
    assert [(b.seq_first, b.seq_last) for b in batches] == [
        (ORIGIN, ORIGIN + 1),
        (ORIGIN + 3, ORIGIN + 5),
    ]


def test_a_full_disk_holds_samples_in_memory_and_writes_them_when_space_returns(tmp_path, clock):
    spool = open_spool(tmp_path, clock)
    fill(spool, 3)
    pages = spool._db.execute("PRAGMA page_count").fetchone()[0]
    spool._db.execute(f"PRAGMA max_page_count = {pages}")  # "database or disk is full"
    held = fill(spool, 200)
    assert spool.degraded is not None
    assert "spool.sqlite3" in spool.degraded
    assert spool.held > 0
    assert drain(spool) == [ORIGIN, ORIGIN + 1, ORIGIN + 2, *held]  # sampling went on
    assert spool.held == 0  # sent from memory
    more = fill(spool, 2)
    spool._db.execute("PRAGMA max_page_count = 1000000")
    clock.advance(11)  # RETRY_S
    last = spool.append(factories.sample())
    assert (spool.degraded, spool.held) == (None, 0)
    assert spool.next_unsent().seq_first == more[0]
    spool.close()
    reopened = open_spool(tmp_path, clock)
    assert reopened.next_seq == last + 1  # no seq reused after the recovery


def test_memory_holds_at_most_max_bytes_and_reports_what_it_dropped(tmp_path, clock):
    one = len(msgpack.packb(factories.sample().to_wire(), use_bin_type=True))
    spool = open_spool(tmp_path, clock, max_bytes=10 * one)
    spool._db.execute("PRAGMA query_only = ON")  # "attempt to write a readonly database"
    fill(spool, 25)
    assert "readonly" in (spool.degraded or "")
    assert spool.held == 10
    batch = spool.next_unsent()
    assert (batch.seq_first, batch.spool_dropped) == (ORIGIN + 15, 15)


def rows_in_file(spool: Spool) -> int:
    return spool._scalar("SELECT count(*) FROM samples")


def test_writes_are_grouped_per_interval_and_always_precede_sending(tmp_path, clock):
    spool = open_spool(tmp_path, clock, flush_every_s=5.0)
    fill(spool, 3)
    assert (rows_in_file(spool), spool.held) == (0, 0)  # waiting for the interval, not "held"
    clock.advance(5.0)
    spool.append(factories.sample(factories.TS + 5))
    assert rows_in_file(spool) == 4  # one transaction for the four
    spool.append(factories.sample(factories.TS + 6))
    batch = spool.next_unsent()  # what is about to be sent is in the file first
    assert (rows_in_file(spool), batch.seq_last) == (5, ORIGIN + 4)


def test_a_crash_loses_only_the_unwritten_interval_and_reuses_no_sent_seq(tmp_path, clock):
    spool = open_spool(tmp_path, clock, flush_every_s=5.0)
    fill(spool, 2)
    assert drain(spool) == [ORIGIN, ORIGIN + 1]  # sent: written and committed first
    fill(spool, 3)  # this interval's samples, not written yet: the process dies (no close)
    reopened = open_spool(tmp_path, clock, flush_every_s=5.0)
    assert reopened.unclean  # so a new stream, from the clock in ms or the file's next seq
    assert reopened.stream_first == reopened.next_seq == ORIGIN + 2
    assert fill(reopened, 1) == [ORIGIN + 2]
    assert drain(reopened) == [ORIGIN + 2]


def test_a_crash_while_the_disk_was_full_never_reuses_a_seq_sent_from_memory(tmp_path, clock):
    spool = open_spool(tmp_path, clock)
    fill(spool, 3)
    pages = spool._db.execute("PRAGMA page_count").fetchone()[0]
    spool._db.execute(f"PRAGMA max_page_count = {pages}")  # "database or disk is full"
    fill(spool, 50)
    sent = drain(spool)  # sent from memory: the file never took these seqs
    assert spool.degraded is not None
    clock.advance(53)  # 53 samples at 1 Hz; killed (no close), restarted at once
    reopened = open_spool(tmp_path, clock)
    assert reopened.unclean
    assert reopened.stream_first == reopened.next_seq > max(sent)
    replayed = reopened.next_unsent()  # the file's three: their sends were never written
    assert (replayed.seq_first, replayed.stream_first) == (ORIGIN, ORIGIN)  # the old stream's
    assert fill(reopened, 1)[0] > max(sent)


def test_a_clean_close_numbers_on_in_the_same_stream(tmp_path, clock):
    spool = open_spool(tmp_path, clock)
    fill(spool, 2)
    spool.close()
    clock.advance(60)
    reopened = open_spool(tmp_path, clock)
    assert not reopened.unclean
    assert (reopened.stream_first, reopened.next_seq) == (ORIGIN, ORIGIN + 2)


def test_a_look_at_the_spool_neither_claims_it_nor_starts_a_stream(tmp_path, clock):
    spool = open_spool(tmp_path, clock)
    fill(spool, 2)
    spool.flush()
    clock.advance(60)
    look = open_spool(tmp_path, clock, claim=False)  # `dormouse-agent check` while it runs
    assert (look.unclean, look.stream_first, look.next_seq) == (False, ORIGIN, ORIGIN + 2)
    look.close()
    assert open_spool(tmp_path, clock).unclean  # the running agent's mark is still there


@given(
    st.lists(st.floats(0, 100), min_size=1, max_size=20),
    st.integers(0, 10**12),
    st.integers(0, 10**6),
    st.integers(0, 10**12),
)
def test_a_spooled_batch_frames_to_exactly_what_encode_makes_of_it(cpus, first, dropped, stream):
    stream = min(stream, first)  # a stream starts at or before its batches
    bodies = tuple(
        msgpack.packb(factories.sample(factories.TS + i, cpu).to_wire(), use_bin_type=True)
        for i, cpu in enumerate(cpus)
    )
    batch = SpooledBatch("gpu-01", first, bodies, spool_dropped=dropped, stream_first=stream)
    assert batch.payload() == encode(batch.message())
    assert decode(batch.payload(), Kind.TELEMETRY, "gpu-01") == batch.message()
    assert batch.seq_last == first + len(cpus) - 1
