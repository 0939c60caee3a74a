"""A job's output from its node, in process: the agent's piece of a file (offsets, the end,
whole UTF-8 characters), the request in the store, the leader sending it or answering for a
node asleep, the node's answer filed and read back by the service."""

from __future__ import annotations

import threading
import time

import pytest

from agent.jobdir import Piece, read_piece
from agent.runner import Runner
from coordinator.core.jobstate import JobRecord, JobState
from coordinator.core.nodestate import NodeState
from coordinator.core.registry import NodeView, Registry
from coordinator.daemon.outputs import Outputs
from coordinator.services import output as output_service
from coordinator.store import jobs as job_rows
from coordinator.store import outputs as output_rows
from shared.clock import ManualClock
from shared.messages import OUTPUT_BYTES, Event, FetchOutput
from tests import factories
from tests.unit.test_dispatch import Recorder

T0 = factories.TS


def test_a_piece_is_read_from_an_offset_or_from_the_end(tmp_path):
    path = tmp_path / "stdout"
    path.write_bytes(b"one\ntwo\nthree\n")
    assert read_piece(path, 0, 100) == Piece("one\ntwo\nthree\n", 0, 14, 14)
    assert read_piece(path, 4, 4) == Piece("two\n", 4, 8, 14)
    assert read_piece(path, -6, 100) == Piece("three\n", 8, 14, 14)
    assert read_piece(path, -100, 3) == Piece("one", 0, 3, 14)
    assert read_piece(path, 99, 10) == Piece("", 14, 14, 14)  # past the end: nothing yet


def test_a_piece_ends_on_a_whole_character(tmp_path):
    path = tmp_path / "stdout"
    path.write_bytes("aé€😀".encode())  # 1, 2, 3 and 4 bytes
    assert read_piece(path, 0, 2) == Piece("a", 0, 1, 10)  # é cut: left for the next piece
    assert read_piece(path, 1, 4).text == "é"  # € cut after its first two bytes
    assert read_piece(path, 3, 7) == Piece("€😀", 3, 10, 10)
    assert read_piece(path, 6, 3) == Piece("", 6, 6, 10)  # 😀 does not fit at all
    path.write_bytes(b"ok\xff\xfe")  # not UTF-8: replaced, not cut
    assert read_piece(path, 0, 10).text == "ok\ufffd\ufffd"


def test_a_missing_file_is_an_os_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_piece(tmp_path / "nope", 0, 10)


def test_the_agent_answers_with_the_piece_or_the_reason(tmp_path):
    runner = Runner(tmp_path, "n1", ManualClock(T0), log_max_bytes=1 << 20, kill_grace_s=1.0)
    (tmp_path / "j1").mkdir()
    (tmp_path / "j1" / "stderr").write_text("boom\n")
    answer = runner.output(FetchOutput(job_id="j1", request=7, stream="stderr", offset=0))
    assert (answer.kind, answer.request, answer.output) == ("job_output", 7, "boom\n")
    assert (answer.output_offset, answer.output_next, answer.output_size) == (0, 5, 5)
    missing = runner.output(FetchOutput(job_id="j2", request=8))
    assert missing.output == ""
    assert "no stdout for job j2 on n1" in missing.detail
    assert FetchOutput(job_id="j1", request=1).offset == -OUTPUT_BYTES  # the last 16 KiB


def view(state: NodeState) -> NodeView:
    return NodeView("n1", state, T0, last_seen=T0, hello=factories.hello("n1"))


async def test_the_leader_sends_a_request_to_an_awake_node_and_files_its_answer(empty_store):
    sender = Recorder()
    outputs = Outputs(empty_store, Registry(30.0, [view(NodeState.ONLINE)]), sender)
    with empty_store.begin() as conn:
        asked = output_rows.ask(conn, "j1", "n1", "stdout", offset=-100, now=T0)
    await outputs.tick(T0 + 1)
    [(_, node, body)] = sender.sent
    assert node == "n1"
    assert body == FetchOutput(job_id="j1", request=asked, stream="stdout", offset=-100)
    await outputs.tick(T0 + 2)
    assert len(sender.sent) == 1  # sent once
    event = Event(
        node="n1", ts=T0 + 2, kind="job_output", job_id="j1", request=asked, output="hi\n",
        output_offset=10, output_next=13, output_size=13,
    )  # fmt: skip
    await outputs.on_event(event)
    with empty_store.begin() as conn:
        answer = output_rows.take(conn, asked)
        assert answer == output_rows.Answer("hi\n", 10, 13, 13, "")
        assert output_rows.take(conn, asked) is None  # taken: gone


async def test_a_node_asleep_is_answered_for_and_old_requests_expire(empty_store):
    sender = Recorder()
    outputs = Outputs(empty_store, Registry(30.0, [view(NodeState.ASLEEP)]), sender)
    with empty_store.begin() as conn:
        asked = output_rows.ask(conn, "j1", "n1", "stdout", offset=0, now=T0)
        stale = output_rows.ask(conn, "j1", "n1", "stdout", offset=0, now=T0 - 120)
    await outputs.tick(T0)
    assert sender.sent == []
    with empty_store.begin() as conn:
        assert output_rows.take(conn, asked).detail == "node n1 is asleep"
        assert output_rows.take(conn, stale) is None
        assert output_rows.unsent(conn, T0) == []


def test_the_service_waits_for_the_answer_and_says_the_job_state(empty_store):
    job = JobRecord(id="j1", argv=("x",), submitted_at=T0, state=JobState.RUNNING, node="n1")
    with empty_store.begin() as conn:
        job_rows.insert(conn, job, T0)

    def answer_when_asked() -> None:  # the leader and the node, played
        for _ in range(100):
            with empty_store.begin() as conn:
                waiting = output_rows.unsent(conn, time.time())
                if waiting:
                    output_rows.sent(conn, waiting[0].id, T0)
                    output_rows.answer(
                        conn,
                        Event(
                            node="n1",
                            ts=T0,
                            kind="job_output",
                            job_id="j1",
                            request=waiting[0].id,
                            output="line\n",
                            output_offset=0,
                            output_next=5,
                            output_size=5,
                        ),
                    )
                    return
            threading.Event().wait(0.05)

    helper = threading.Thread(target=answer_when_asked)
    helper.start()
    piece = output_service.fetch(empty_store, "j1", wait_s=5.0)
    helper.join()
    assert piece == {
        "id": "j1", "node": "n1", "stream": "stdout", "state": "running",
        "offset": 0, "next": 5, "size": 5, "output": "line\n",
    }  # fmt: skip
    with pytest.raises(output_service.OutputUnavailable, match=r"no answer from n1 in 0\.3s"):
        output_service.fetch(empty_store, "j1", wait_s=0.3)
