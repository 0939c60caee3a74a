"""accounts: who a job is charged to, its GPUs' measured use, waste flags, budget events, and
when each node first appeared (fixed costs run from then)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("account", sa.String(64), nullable=False, server_default=""))
        batch.add_column(sa.Column("user_name", sa.String(64), nullable=False, server_default=""))
        batch.add_column(sa.Column("gpu_util_pct", sa.Double(), nullable=True))
        batch.add_column(sa.Column("wasteful_at", sa.Double(), nullable=True))
        batch.create_index("ix_jobs_account", ["account"])
    with op.batch_alter_table("nodes") as batch:
        batch.add_column(sa.Column("first_seen", sa.Double(), nullable=True))
    op.execute(
        "UPDATE nodes SET first_seen = coalesce("
        "(SELECT min(bucket) FROM hour_rollups WHERE hour_rollups.node = nodes.name), "
        "(SELECT min(bucket) FROM minute_rollups WHERE minute_rollups.node = nodes.name), "
        "state_since)"
    )
    op.create_table(
        "budget_events",
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("period_start", sa.Double(), nullable=False),
        sa.Column("threshold_pct", sa.Integer(), nullable=False),
        sa.Column("ts", sa.Double(), nullable=False),
        sa.Column("spent", sa.Double(), nullable=False),
        sa.Column("budget", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint(
            "account", "period_start", "threshold_pct", name=op.f("pk_budget_events")
        ),
    )


def downgrade() -> None:
    op.drop_table("budget_events")
    with op.batch_alter_table("nodes") as batch:
        batch.drop_column("first_seen")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_index("ix_jobs_account")
        for column in ("wasteful_at", "gpu_util_pct", "user_name", "account"):
            batch.drop_column(column)
