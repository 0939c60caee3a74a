"""The commands this agent accepted, on disk (`accepted.sqlite3` beside the spool), so a
command captured on the broker and replayed after an agent restart is refused: its id is
still known until it expires, and nothing issued before the latest accepted command (less
`ORDER_SLACK_S`) is taken at all, nor signed at a leadership epoch below the highest seen.
Each accepted command is committed before it runs.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from agent.storefiles import checked
from shared.messages import Command

ACCEPTED_FILE = "accepted.sqlite3"
SCHEMA = """
CREATE TABLE IF NOT EXISTS accepted (id TEXT PRIMARY KEY, expires_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS accepted_expiry ON accepted (expires_at);
CREATE TABLE IF NOT EXISTS latest (one INTEGER PRIMARY KEY CHECK (one = 1), issued_at REAL);
CREATE TABLE IF NOT EXISTS epoch (one INTEGER PRIMARY KEY CHECK (one = 1), epoch INTEGER);
"""


class FileAccepted:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = checked(sqlite3.connect(path, isolation_level=None))
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        self._db.close()

    def __contains__(self, command_id: object) -> bool:
        row = self._db.execute("SELECT 1 FROM accepted WHERE id = ?", (command_id,)).fetchone()
        return row is not None

    def __len__(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM accepted").fetchone()[0])

    def add(self, command: Command) -> None:
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("INSERT INTO accepted VALUES (?, ?)", (command.id, command.expires_at))
            self._db.execute(
                "INSERT INTO latest VALUES (1, ?) ON CONFLICT (one) DO UPDATE "
                "SET issued_at = max(issued_at, excluded.issued_at)",
                (command.issued_at,),
            )
            self._db.execute(
                "INSERT INTO epoch VALUES (1, ?) ON CONFLICT (one) DO UPDATE "
                "SET epoch = max(epoch, excluded.epoch)",
                (command.epoch,),
            )

    def forget_expired(self, before: float) -> None:
        self._db.execute("DELETE FROM accepted WHERE expires_at < ?", (before,))

    def latest_issued_at(self) -> float | None:
        row = self._db.execute("SELECT issued_at FROM latest").fetchone()
        return None if row is None else float(row[0])

    def highest_epoch(self) -> int:
        """The highest leadership epoch of any accepted command (0: none seen)."""
        row = self._db.execute("SELECT epoch FROM epoch").fetchone()
        return 0 if row is None else int(row[0])
