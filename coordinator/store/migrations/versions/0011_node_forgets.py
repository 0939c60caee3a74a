"""node forgets: an operator's `dormouse nodes forget`, read by every coordinator process

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "node_forgets",
        sa.Column("node", sa.String(length=64), nullable=False),
        sa.Column("asked_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("node", name=op.f("pk_node_forgets")),
    )
    op.create_index(op.f("ix_node_forgets_asked_at"), "node_forgets", ["asked_at"])


def downgrade() -> None:
    op.drop_table("node_forgets")
