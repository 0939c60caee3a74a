"""The coordinator's SQL store: SQLAlchemy 2 models, Alembic migrations and repository
functions. ORM rows never leave this package; callers get plain values and dataclasses."""
