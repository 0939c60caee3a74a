"""Opening the store: engines with the right pragmas, and migrations to the latest schema."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"


def create_engine(url: str) -> sa.Engine:
    """SQLite gets WAL (readers never block the writer) and a busy timeout; its parent
    directory is created. PostgreSQL gets a pre-ping so a restarted server is noticed."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 30})
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return sa.create_engine(url, pool_pre_ping=True)


def _sqlite_pragmas(dbapi_connection: Any, _record: object) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def alembic_config(connection: sa.Connection | None = None) -> Config:
    """No URL is set: env.py uses the connection given (a "%" in a URL would break
    configparser, which Alembic keeps its options in). Alembic is imported here, not at the
    top: every command opens the store, and only migrations need it (~0.1 s)."""
    from alembic.config import Config  # noqa: PLC0415

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def upgrade(engine: sa.Engine) -> str | None:
    """Migrate to the newest revision; returns the revision the store was at before."""
    from alembic import command  # noqa: PLC0415 - see alembic_config

    with engine.begin() as connection:  # read in the migration's transaction: no race
        before = _revision(connection)
        command.upgrade(alembic_config(connection), "head")
    return before


def current_revision(engine: sa.Engine) -> str | None:
    """The store's revision, read as Alembic keeps it (`alembic_version`), None when the
    store is empty."""
    with engine.connect() as connection:
        return _revision(connection)


def _revision(connection: sa.Connection) -> str | None:
    """The revision as `connection` sees it, inside whatever transaction it holds."""
    if not sa.inspect(connection).has_table("alembic_version"):
        return None
    found = connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalars()
    revisions = list(found)
    if len(revisions) > 1:
        raise RuntimeError(f"the store has several heads: {', '.join(revisions)}")
    return revisions[0] if revisions else None


def head_revision() -> str:
    """This release's newest revision. The migrations are one line (each file's revision is
    its number, `tests/integration/test_store.py` checks it against Alembic's own reading),
    so the newest file names it without Alembic parsing every script."""
    files = (MIGRATIONS / "versions").glob("[0-9]*_*.py")
    numbered = sorted(p.name.split("_", 1)[0] for p in files)
    if not numbered:
        raise RuntimeError("the migrations have no head revision")  # a broken install
    return numbered[-1]
