"""timeline indexes: a node's last power event before a time, jobs by when they ended and
when they left the queue (the console's fleet over time reads only what changed)

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07
"""

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_power_events_node_ts", "power_events", ["node", "ts"])
    op.create_index("ix_jobs_finished_at", "jobs", ["finished_at"])
    op.create_index("ix_jobs_placed_at", "jobs", ["placed_at"])


def downgrade() -> None:
    op.drop_index("ix_jobs_placed_at", table_name="jobs")
    op.drop_index("ix_jobs_finished_at", table_name="jobs")
    op.drop_index("ix_power_events_node_ts", table_name="power_events")
