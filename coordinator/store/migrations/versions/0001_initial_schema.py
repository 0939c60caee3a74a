"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "coordinator_stats",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Double(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_coordinator_stats")),
    )
    op.create_table(
        "gpu_samples",
        sa.Column("node", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("gpu_index", sa.SmallInteger(), nullable=False),
        sa.Column("uuid", sa.String(length=96), nullable=False),
        sa.Column("ts", sa.Double(), nullable=False),
        sa.Column("gpu_util_pct", sa.Double(), nullable=True),
        sa.Column("gpu_mem_util_pct", sa.Double(), nullable=True),
        sa.Column("gpu_mem_used_bytes", sa.BigInteger(), nullable=True),
        sa.Column("gpu_mem_total_bytes", sa.BigInteger(), nullable=True),
        sa.Column("gpu_power_w", sa.Double(), nullable=True),
        sa.Column("gpu_energy_j", sa.Double(), nullable=True),
        sa.Column("gpu_temp_c", sa.Double(), nullable=True),
        sa.PrimaryKeyConstraint("node", "seq", "gpu_index", name=op.f("pk_gpu_samples")),
    )
    with op.batch_alter_table("gpu_samples", schema=None) as batch_op:
        batch_op.create_index("ix_gpu_samples_node_ts", ["node", "ts"], unique=False)

    op.create_table(
        "nodes",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("state_since", sa.Double(), nullable=False),
        sa.Column("last_seen", sa.Double(), nullable=True),
        sa.Column("hostname", sa.String(length=255), nullable=True),
        sa.Column("agent_version", sa.String(length=64), nullable=True),
        sa.Column("cpus", sa.Integer(), nullable=True),
        sa.Column("mem_total_bytes", sa.BigInteger(), nullable=True),
        sa.Column("hello", sa.JSON(), nullable=True),
        sa.Column("latest", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_nodes")),
    )
    op.create_table(
        "rollup_dirty",
        sa.Column("node", sa.String(length=64), nullable=False),
        sa.Column("bucket", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("node", "bucket", name=op.f("pk_rollup_dirty")),
    )
    op.create_table(
        "rollup_hour",
        sa.Column("node", sa.String(length=64), nullable=False),
        sa.Column("gpu_index", sa.SmallInteger(), nullable=False),
        sa.Column("metric", sa.String(length=64), nullable=False),
        sa.Column("bucket", sa.Double(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("avg", sa.Double(), nullable=True),
        sa.Column("min", sa.Double(), nullable=True),
        sa.Column("max", sa.Double(), nullable=True),
        sa.Column("delta", sa.Double(), nullable=True),
        sa.PrimaryKeyConstraint(
            "node", "gpu_index", "metric", "bucket", name=op.f("pk_rollup_hour")
        ),
    )
    with op.batch_alter_table("rollup_hour", schema=None) as batch_op:
        batch_op.create_index("ix_rollup_hour_bucket", ["bucket"], unique=False)

    op.create_table(
        "rollup_minute",
        sa.Column("node", sa.String(length=64), nullable=False),
        sa.Column("gpu_index", sa.SmallInteger(), nullable=False),
        sa.Column("metric", sa.String(length=64), nullable=False),
        sa.Column("bucket", sa.Double(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("avg", sa.Double(), nullable=True),
        sa.Column("min", sa.Double(), nullable=True),
        sa.Column("max", sa.Double(), nullable=True),
        sa.Column("delta", sa.Double(), nullable=True),
        sa.PrimaryKeyConstraint(
            "node", "gpu_index", "metric", "bucket", name=op.f("pk_rollup_minute")
        ),
    )
    with op.batch_alter_table("rollup_minute", schema=None) as batch_op:
        batch_op.create_index("ix_rollup_minute_bucket", ["bucket"], unique=False)

    op.create_table(
        "samples",
        sa.Column("node", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("ts", sa.Double(), nullable=False),
        sa.Column("cpu_util_pct", sa.Double(), nullable=True),
        sa.Column("cpu_core_util_pct", sa.JSON(), nullable=True),
        sa.Column("cpu_freq_mhz", sa.Double(), nullable=True),
        sa.Column("load_avg_1m", sa.Double(), nullable=True),
        sa.Column("load_avg_5m", sa.Double(), nullable=True),
        sa.Column("load_avg_15m", sa.Double(), nullable=True),
        sa.Column("mem_total_bytes", sa.BigInteger(), nullable=True),
        sa.Column("mem_used_bytes", sa.BigInteger(), nullable=True),
        sa.Column("mem_available_bytes", sa.BigInteger(), nullable=True),
        sa.Column("swap_used_bytes", sa.BigInteger(), nullable=True),
        sa.Column("rapl_package_energy_j", sa.Double(), nullable=True),
        sa.Column("rapl_dram_energy_j", sa.Double(), nullable=True),
        sa.Column("rapl_power_w", sa.Double(), nullable=True),
        sa.Column("power_w", sa.Double(), nullable=True),
        sa.Column("connections", sa.BigInteger(), nullable=True),
        sa.Column("jobs_running", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("node", "seq", name=op.f("pk_samples")),
    )
    with op.batch_alter_table("samples", schema=None) as batch_op:
        batch_op.create_index("ix_samples_node_ts", ["node", "ts"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("samples", schema=None) as batch_op:
        batch_op.drop_index("ix_samples_node_ts")

    op.drop_table("samples")
    with op.batch_alter_table("rollup_minute", schema=None) as batch_op:
        batch_op.drop_index("ix_rollup_minute_bucket")

    op.drop_table("rollup_minute")
    with op.batch_alter_table("rollup_hour", schema=None) as batch_op:
        batch_op.drop_index("ix_rollup_hour_bucket")

    op.drop_table("rollup_hour")
    op.drop_table("rollup_dirty")
    op.drop_table("nodes")
    with op.batch_alter_table("gpu_samples", schema=None) as batch_op:
        batch_op.drop_index("ix_gpu_samples_node_ts")

    op.drop_table("gpu_samples")
    op.drop_table("coordinator_stats")
