"""The end of a job's output for its end event: the last `TAIL_CHARS` of each stream, read
from the end of the file however large it grew, undecodable bytes replaced."""

from __future__ import annotations

from agent.jobdir import tails
from shared.messages import TAIL_CHARS, Event


def test_the_last_characters_of_each_stream(tmp_path):
    (tmp_path / "stdout").write_text("".join(f"line {i}\n" for i in range(100_000)))
    (tmp_path / "stderr").write_bytes(b"\xff\xfe broken bytes\nthe end\n")
    found = tails(tmp_path)
    assert len(found["stdout_tail"]) == TAIL_CHARS
    assert found["stdout_tail"].endswith("line 99999\n")
    assert found["stderr_tail"] == "\ufffd\ufffd broken bytes\nthe end\n"


def test_a_job_without_output_files_has_empty_tails(tmp_path):
    assert tails(tmp_path) == {"stdout_tail": "", "stderr_tail": ""}


def test_an_event_without_output_is_what_agents_sent_before():
    plain = Event(node="n1", ts=1.0, kind="job_finished", job_id="j1", exit_code=0)
    assert "stdout_tail" not in plain.to_wire()
    told = Event(node="n1", ts=1.0, kind="job_finished", job_id="j1", exit_code=0, stdout_tail="x")
    assert told.to_wire()["stdout_tail"] == "x"
