"""scale out: the leader's view of each node (node_live) and the coordinator processes

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "node_live",
        sa.Column("node", sa.String(length=64), nullable=False),
        sa.Column("seen_at", sa.Double(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("stream_first", sa.BigInteger(), nullable=False),
        sa.Column("latest", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("node", name=op.f("pk_node_live")),
    )
    op.create_index(op.f("ix_node_live_seen_at"), "node_live", ["seen_at"])
    op.create_table(
        "coordinator_workers",
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("started_at", sa.Double(), nullable=False),
        sa.Column("seen_at", sa.Double(), nullable=False),
        sa.Column("figures", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_coordinator_workers")),
    )


def downgrade() -> None:
    op.drop_table("coordinator_workers")
    op.drop_index(op.f("ix_node_live_seen_at"), table_name="node_live")
    op.drop_table("node_live")
