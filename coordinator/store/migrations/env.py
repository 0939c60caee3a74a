"""Alembic environment: run with a connection handed over by `coordinator.store.engine`,
or with `alembic -x url=...` for development."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from coordinator.store.models import Base

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    url = context.get_x_argument(as_dictionary=True).get("url", "sqlite:///dormouse.db")
    with sa.create_engine(url).begin() as conn:
        context.configure(
            connection=conn,
            target_metadata=Base.metadata,
            render_as_batch=conn.dialect.name == "sqlite",
        )
        context.run_migrations()
else:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
