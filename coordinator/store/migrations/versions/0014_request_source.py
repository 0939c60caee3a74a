"""power request source: who asked (an operator, Slurm's SuspendProgram or ResumeProgram)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("power_requests") as batch:
        batch.add_column(
            sa.Column("source", sa.String(64), nullable=False, server_default="operator")
        )


def downgrade() -> None:
    with op.batch_alter_table("power_requests") as batch:
        batch.drop_column("source")
