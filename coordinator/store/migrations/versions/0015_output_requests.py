"""output requests: `dormouse jobs logs` asks a job's node for a piece of its output

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "output_requests",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("ts", sa.Double(), nullable=False),
        sa.Column("job_id", sa.String(length=64), nullable=False),
        sa.Column("node", sa.String(length=64), nullable=False),
        sa.Column("stream", sa.String(length=8), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("sent_at", sa.Double(), nullable=True),
        sa.Column("answered_at", sa.Double(), nullable=True),
        sa.Column("output", sa.Text(), nullable=True),
        sa.Column("output_offset", sa.BigInteger(), nullable=True),
        sa.Column("output_next", sa.BigInteger(), nullable=True),
        sa.Column("output_size", sa.BigInteger(), nullable=True),
        sa.Column("detail", sa.String(length=1024), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_output_requests")),
    )
    op.create_index("ix_output_requests_ts", "output_requests", ["ts"])


def downgrade() -> None:
    op.drop_index("ix_output_requests_ts", table_name="output_requests")
    op.drop_table("output_requests")
