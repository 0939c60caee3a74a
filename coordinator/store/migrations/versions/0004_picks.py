"""pick state: the round-robin cursor and the last affinity pick per node

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pick_cursors",
        sa.Column("strategy", sa.String(length=32), nullable=False),
        sa.Column("node", sa.String(length=64), nullable=False),
        sa.Column("at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("strategy", name=op.f("pk_pick_cursors")),
    )
    op.create_table(
        "affinity_traffic",
        sa.Column("node", sa.String(length=64), nullable=False),
        sa.Column("at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("node", name=op.f("pk_affinity_traffic")),
    )


def downgrade() -> None:
    op.drop_table("affinity_traffic")
    op.drop_table("pick_cursors")
