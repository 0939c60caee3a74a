"""GPU health: the health metrics' columns, operator drains and GPU health events

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

INTEGER_COLUMNS = (
    "gpu_xid_count",
    "gpu_xid_last",
    "gpu_ecc_volatile_corrected",
    "gpu_ecc_volatile_uncorrected",
    "gpu_ecc_aggregate_corrected",
    "gpu_ecc_aggregate_uncorrected",
    "gpu_remap_correctable_rows",
    "gpu_remap_uncorrectable_rows",
    "gpu_remap_pending",
    "gpu_remap_failed",
    "gpu_retired_pages_pending",
    "gpu_pcie_replay_count",
    "gpu_throttle_power_cap",
    "gpu_throttle_thermal",
    "gpu_throttle_hw_slowdown",
)
FLOAT_COLUMNS = ("gpu_clock_sm_mhz", "gpu_clock_mem_mhz", "gpu_power_limit_w")


def upgrade() -> None:
    with op.batch_alter_table("gpu_samples", schema=None) as batch_op:
        for name in INTEGER_COLUMNS:
            batch_op.add_column(sa.Column(name, sa.BigInteger(), nullable=True))
        for name in FLOAT_COLUMNS:
            batch_op.add_column(sa.Column(name, sa.Double(), nullable=True))
    op.create_table(
        "drains",
        sa.Column("node", sa.String(length=64), nullable=False),
        sa.Column("gpu_index", sa.SmallInteger(), nullable=False),
        sa.Column("reason", sa.String(length=256), nullable=False),
        sa.Column("since", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("node", "gpu_index", name=op.f("pk_drains")),
    )
    op.create_table(
        "gpu_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("ts", sa.Double(), nullable=False),
        sa.Column("node", sa.String(length=64), nullable=False),
        sa.Column("gpu_index", sa.SmallInteger(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=256), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gpu_events")),
    )
    op.create_index("ix_gpu_events_ts", "gpu_events", ["ts"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_gpu_events_ts", table_name="gpu_events")
    op.drop_table("gpu_events")
    op.drop_table("drains")
    with op.batch_alter_table("gpu_samples", schema=None) as batch_op:
        for name in (*INTEGER_COLUMNS, *FLOAT_COLUMNS):
            batch_op.drop_column(name)
