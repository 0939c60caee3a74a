"""Opening the store, and its schema: what `dormouse run`, every reading command and
`dormouse db` share."""

from __future__ import annotations

import logging
from pathlib import Path

import sqlalchemy as sa

from coordinator.settings import CoordinatorConfig
from coordinator.store.engine import create_engine, current_revision, head_revision, upgrade
from shared.errors import ConfigError

log = logging.getLogger(__name__)
Engine = sa.Engine  # the handle the CLI holds and passes back to the services


def open_store(config: CoordinatorConfig, *, migrate_empty: bool) -> sa.Engine:
    """The engine, at the newest schema: an empty store is migrated when `migrate_empty`;
    one at an older revision is refused (upgrading is the operator's call). Reading never
    creates one: a SQLite file that is not there is not made."""
    if not migrate_empty and _absent_sqlite_file(config.db_url):
        raise _no_store(config.db_url)
    try:
        engine = create_engine(config.db_url)
        revision = current_revision(engine)
    except (sa.exc.SQLAlchemyError, OSError) as exc:
        raise ConfigError(f"db: cannot open {safe_url(config.db_url)}: {db_reason(exc)}") from None
    if revision is None and migrate_empty:
        upgrade(engine)
        log.info("created the store at %s", safe_url(config.db_url))
    elif revision is None:
        raise _no_store(config.db_url)
    elif revision != head_revision():
        raise ConfigError(
            f"db: store is at revision {revision}, this release needs "
            f"{head_revision()}: run `dormouse db upgrade`"
        )
    return engine


def _no_store(url: str) -> ConfigError:
    return ConfigError(
        f"db: {safe_url(url)} holds no dormouse store yet "
        "(run `dormouse run` or `dormouse db upgrade`)"
    )


def _absent_sqlite_file(url: str) -> bool:
    parsed = sa.engine.make_url(url)
    database = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or database in {"", ":memory:"}:
        return False
    return not Path(database).exists()


def db_reason(exc: BaseException) -> str:
    """The driver's own words on one line: SQLAlchemy wraps them with the statement, its
    class name and a link, over several lines; an operator needs only the reason."""
    original = getattr(exc, "orig", None) or exc
    lines = [" ".join(line.split()) for line in str(original).splitlines()]
    kept = [line for line in lines if line and not line.startswith("(Background on this error")]
    reason = "; ".join(kept) or type(original).__name__
    return reason.replace("connection failed: ", "", 1).replace("FATAL: ", "")


def safe_url(url: str) -> str:
    """The URL with its password hidden, for logs and errors."""
    return sa.engine.make_url(url).render_as_string(hide_password=True)


def upgrade_schema(config: CoordinatorConfig) -> tuple[str | None, str]:
    """Create the store or migrate it to this release: (revision before, revision now)."""
    engine = create_engine(config.db_url)
    try:
        return upgrade(engine), head_revision()
    except sa.exc.SQLAlchemyError as exc:
        raise ConfigError(f"db: migration failed: {db_reason(exc)}") from None


def schema_revisions(config: CoordinatorConfig) -> tuple[str | None, str]:
    """(the store's revision, the one this release needs); None for a SQLite file that
    is not there (not created by asking)."""
    if _absent_sqlite_file(config.db_url):
        return None, head_revision()
    try:
        return current_revision(create_engine(config.db_url)), head_revision()
    except sa.exc.SQLAlchemyError as exc:
        raise ConfigError(f"db: cannot open the store: {db_reason(exc)}") from None
