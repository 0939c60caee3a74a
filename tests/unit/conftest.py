"""Fixtures for in-process CLI tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from coordinator.store.engine import create_engine, upgrade


@pytest.fixture
def empty_store(monkeypatch, tmp_path) -> Iterator[sa.Engine]:
    """A migrated SQLite store that `dormouse` commands find through DORMOUSE_DB, and a
    command key beside it (as an installed coordinator has)."""
    for name in ("DORMOUSE_CONFIG", "DORMOUSE_BROKER"):
        monkeypatch.delenv(name, raising=False)
    key = tmp_path / "command.key"
    key.write_text("0" * 64)
    monkeypatch.setenv("DORMOUSE_COMMAND_KEY_FILE", str(key))
    url = f"sqlite:///{tmp_path / 'd.db'}"
    monkeypatch.setenv("DORMOUSE_DB", url)
    engine = create_engine(url)
    upgrade(engine)
    yield engine
    engine.dispose()
