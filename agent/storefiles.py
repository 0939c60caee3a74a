"""Opening the agent's SQLite files (the spool, the accepted commands) so that a broken one
never ends the agent in a traceback loop under systemd:

* a file that is not a database or is malformed (`PRAGMA quick_check` at open) is moved
  aside (`NAME.broken-UTCTIME`, with its -wal and -shm) with one log line saying where, and
  a fresh one is made (for the spool, a new sample stream, which the coordinator files as
  such);
* a file that cannot be opened or created (read-only, no space, permissions) is replaced by
  memory, said once; the agent keeps sampling;
* a file locked by another process (a second agent on the same directory) stops the agent
  with a one-line reason: two agents must not share a spool.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from shared.errors import ConfigError

log = logging.getLogger(__name__)
T = TypeVar("T")


def open_store(path: Path, what: str, opener: Callable[[], T], in_memory: Callable[[str], T]) -> T:
    try:
        return opener()
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc):
            raise ConfigError(f"{what} {path} is locked: is another agent using it?") from None
        return _in_memory(path, what, str(exc), in_memory)
    except sqlite3.DatabaseError as exc:
        moved = quarantine(path)
        log.error(
            "%s %s is unreadable (%s): moved to %s; starting a fresh one", what, path, exc, moved
        )
    except OSError as exc:
        return _in_memory(path, what, exc.strerror or str(exc), in_memory)
    return opener()


def checked(db: sqlite3.Connection) -> sqlite3.Connection:
    """`db` once `PRAGMA quick_check` passes: a file whose header reads but whose pages do
    not (random bytes over an index) fails here, at open, where `open_store` moves it
    aside, rather than at the first query after every start."""
    try:
        found = [row[0] for row in db.execute("PRAGMA quick_check")]
    except sqlite3.DatabaseError:
        db.close()
        raise
    if found != ["ok"]:
        db.close()
        raise sqlite3.DatabaseError(f"database disk image is malformed: {'; '.join(found[:3])}")
    return db


def _in_memory(path: Path, what: str, reason: str, in_memory: Callable[[str], T]) -> T:
    why = f"cannot use {path} ({reason})"
    log.error("%s: %s; keeping it in memory until the agent restarts with it fixed", what, why)
    return in_memory(why)


def quarantine(path: Path) -> Path:
    """Move a broken SQLite file (and its WAL and shared-memory files) aside."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = path.with_name(f"{path.name}.broken-{stamp}")
    for suffix in ("", "-wal", "-shm", "-journal"):
        part = path.with_name(path.name + suffix)
        if part.exists():
            part.rename(target.with_name(target.name + suffix))
    return target
