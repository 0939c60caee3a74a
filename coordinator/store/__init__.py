"""The coordinator's SQL store: SQLAlchemy 2 models, Alembic migrations, and one module of
statements per table group (samples, nodes, stats, rollups, series, jobs, power, usage).
ORM rows never leave this package; callers get plain values and dataclasses."""
