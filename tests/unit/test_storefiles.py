"""A broken, unwritable or locked spool never ends the agent in a traceback loop."""

from __future__ import annotations

import logging
import random
import sqlite3

import pytest

from agent.service import check_spool, open_accepted, open_spool
from agent.settings import AgentConfig
from shared.clock import ManualClock
from shared.errors import ConfigError
from shared.signing import MemoryAccepted
from tests import factories


@pytest.fixture
def config(tmp_path) -> AgentConfig:
    return AgentConfig(node="gpu-01", spool_dir=tmp_path / "spool")


@pytest.mark.parametrize(
    "content", [b"this is not a database, " * 100, b"SQLite format 3\x00" + b"\xff" * 4000]
)
def test_a_broken_spool_is_moved_aside_and_a_fresh_one_started(config, content, caplog):
    config.spool_dir.mkdir()
    (config.spool_dir / "spool.sqlite3").write_bytes(content)
    with caplog.at_level(logging.ERROR):
        spool = open_spool(config, ManualClock(factories.TS))
    assert spool.created
    assert spool.degraded is None
    spool.append(factories.sample())
    (aside,) = config.spool_dir.glob("spool.sqlite3.broken-*")
    assert aside.read_bytes() == content
    (line,) = [r.getMessage() for r in caplog.records]
    assert "spool.sqlite3 is unreadable" in line
    assert str(aside) in line


def test_an_unwritable_spool_directory_keeps_sampling_in_memory(config, caplog):
    config.spool_dir.parent.mkdir(exist_ok=True)
    config.spool_dir.write_text("a file where the directory should be")
    with caplog.at_level(logging.ERROR):
        spool = open_spool(config, ManualClock(factories.TS))
    assert spool.degraded is not None
    assert str(config.spool_dir) in spool.degraded
    seq = spool.append(factories.sample())
    assert spool.next_unsent().seq_first == seq
    assert len(caplog.records) == 1
    assert isinstance(open_accepted(config), MemoryAccepted)


def test_a_spool_locked_by_another_agent_stops_with_one_line(config):
    first = open_spool(config, ManualClock(factories.TS))
    first.close()
    holder = sqlite3.connect(first.path, isolation_level=None)
    holder.execute("PRAGMA locking_mode = EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(ConfigError, match="is locked: is another agent using it"):
            open_spool(config, ManualClock(factories.TS))
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def corrupt_page(path, page: int) -> None:
    """Random bytes over one page (an index root, for the spool's 3rd and 4th): the header
    still reads, so the file opens; its pages do not."""
    size = sqlite3.connect(path).execute("PRAGMA page_size").fetchone()[0]
    with path.open("r+b") as handle:
        handle.seek((page - 1) * size)
        handle.write(random.Random(page).randbytes(size))


@pytest.mark.parametrize("page", [3, 4])
def test_a_spool_with_a_corrupt_page_is_moved_aside_at_start_and_check_says_so(
    config, page, caplog
):
    spool = open_spool(config, ManualClock(factories.TS))
    for i in range(300):  # enough rows for an index of its own pages
        spool.append(factories.sample(ts=factories.TS + i))
    spool.flush()
    spool.close()
    corrupt_page(spool.path, page)
    failed = check_spool(config)
    assert (failed.ok, failed.required) == (False, True)
    assert "malformed" in failed.detail or "corrupt" in failed.detail
    with caplog.at_level(logging.ERROR):
        fresh = open_spool(config, ManualClock(factories.TS + 400))
    assert fresh.created
    fresh.append(factories.sample(ts=factories.TS + 401))  # and it works
    assert list(config.spool_dir.glob("spool.sqlite3.broken-*"))
    assert "is unreadable" in caplog.text
