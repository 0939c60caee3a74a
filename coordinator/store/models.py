"""Tables. Raw samples are chunks (`core.chunks`), which need no column per metric; the
rollup tables have a column per metric of the registry (`shared/metrics.py`): the
migrations freeze them, and a test fails if the two drift apart."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.metrics import METRICS, Metric

NODE_NAME = sa.String(64)


class Base(DeclarativeBase):
    metadata = sa.MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


def rollup_column(metric: Metric) -> sa.Column[Any]:
    """A metric's aggregates in a rollup row: `core.aggregates` packs them."""
    return sa.Column(metric.name, sa.LargeBinary, nullable=True)


class Node(Base):
    __tablename__ = "nodes"
    name: Mapped[str] = mapped_column(NODE_NAME, primary_key=True)
    state: Mapped[str] = mapped_column(sa.String(16))
    state_since: Mapped[float] = mapped_column(sa.Double)
    last_seen: Mapped[float | None] = mapped_column(sa.Double)
    hostname: Mapped[str | None] = mapped_column(sa.String(255))
    agent_version: Mapped[str | None] = mapped_column(sa.String(64))
    cpus: Mapped[int | None] = mapped_column(sa.Integer)
    mem_total_bytes: Mapped[int | None] = mapped_column(sa.BigInteger)
    first_seen: Mapped[float | None] = mapped_column(sa.Double)  # fixed costs run from it
    hello: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    latest: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)


chunk_schemas = sa.Table(  # the metric names a chunk's columns follow (`core.chunks.Schema`)
    "chunk_schemas",
    Base.metadata,
    sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("names", sa.JSON, nullable=False),
)

CHUNK_SPAN_S = 600.0  # a chunk never spans more: a node's chunks in a window are one range
raw_chunks = sa.Table(  # a run of one node's samples (`core.chunks`): the raw tier
    "raw_chunks",
    Base.metadata,
    sa.Column("node", NODE_NAME, primary_key=True),
    sa.Column("seq_first", sa.BigInteger, primary_key=True),
    sa.Column("ts_first", sa.Double, primary_key=True),  # PostgreSQL: the partition key
    sa.Column("seq_last", sa.BigInteger, nullable=False),
    sa.Column("ts_last", sa.Double, nullable=False),
    sa.Column("schema_id", sa.BigInteger, nullable=False),
    sa.Column("data", sa.LargeBinary, nullable=False),
    sa.Index("ix_raw_chunks_ts_first", "ts_first"),
    sa.Index("ix_raw_chunks_ts_last", "ts_last"),  # retention: what has wholly expired
    sa.Index("ix_raw_chunks_node_ts_first", "node", "ts_first"),
    postgresql_partition_by="RANGE (ts_first)",
)

gpu_uuids = sa.Table(  # the GPUs each node has reported (chunks keep only their indices)
    "gpu_uuids",
    Base.metadata,
    sa.Column("node", NODE_NAME, primary_key=True),
    sa.Column("gpu_index", sa.SmallInteger, primary_key=True),
    sa.Column("uuid", sa.String(96), primary_key=True),
    sa.Column("first_ts", sa.Double, nullable=False),
)


# What `dormouse report` and the console's fleet chart read, carried in the bucket index
# on PostgreSQL: an index-only scan reads ~10 % of the bytes of the rows, which hold every
# metric of every GPU. Other metrics' fleet history reads the rows.
COVERED = ("node", "gpus", "usage", "power_w", "cpu_util_pct", "mem_used_bytes", "gpu_util_pct")


def rollup_table(name: str, **partitioning: Any) -> sa.Table:
    """One row per node and bucket: each metric's aggregates (one entry for a node metric,
    one per GPU of `gpus` for a GPU metric) and the node's energy over the bucket."""
    return sa.Table(
        name,
        Base.metadata,
        sa.Column("node", NODE_NAME, primary_key=True),
        sa.Column("bucket", sa.Double, primary_key=True),
        sa.Column("gpus", sa.LargeBinary, nullable=False),  # the GPU indices, one byte each
        sa.Column("usage", sa.LargeBinary, nullable=False),  # `core.aggregates.Usage`
        *(rollup_column(m) for m in METRICS if not m.vector),
        sa.Index(f"ix_{name}_bucket", "bucket", postgresql_include=list(COVERED)),
        **partitioning,
    )


rollup_minute = rollup_table("minute_rollups", postgresql_partition_by="RANGE (bucket)")
rollup_hour = rollup_table("hour_rollups")

rollup_dirty = sa.Table(
    "rollup_dirty",
    Base.metadata,
    sa.Column("node", NODE_NAME, primary_key=True),
    sa.Column("bucket", sa.Double, primary_key=True),  # a minute whose raw samples changed
)

rollup_dirty_hour = sa.Table(
    "rollup_dirty_hour",
    Base.metadata,
    sa.Column("node", NODE_NAME, primary_key=True),
    sa.Column("bucket", sa.Double, primary_key=True),  # an hour whose minutes changed
)

stats = sa.Table(
    "coordinator_stats",
    Base.metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Double, nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
)

jobs = sa.Table(
    "jobs",
    Base.metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("argv", sa.JSON, nullable=False),
    sa.Column("cpus", sa.Integer, nullable=False),
    sa.Column("mem_bytes", sa.BigInteger, nullable=False),
    sa.Column("gpus", sa.Integer, nullable=False),
    sa.Column("labels", sa.JSON, nullable=False),
    sa.Column("runtime_s", sa.Double, nullable=False),
    sa.Column("deadline", sa.Double),
    sa.Column("priority", sa.Integer, nullable=False),
    sa.Column("requeue", sa.Boolean, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("node", NODE_NAME),
    sa.Column("gpu_indices", sa.JSON, nullable=False),
    sa.Column("submitted_at", sa.Double, nullable=False),
    sa.Column("placed_at", sa.Double),
    sa.Column("started_at", sa.Double),
    sa.Column("finished_at", sa.Double),
    sa.Column("exit_code", sa.Integer),
    sa.Column("energy_j", sa.Double),
    sa.Column("deadline_met", sa.Boolean),
    sa.Column("detail", sa.String(1024), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("cancel_requested", sa.Boolean, nullable=False),
    sa.Column("account", sa.String(64), nullable=False, server_default=""),
    sa.Column("user_name", sa.String(64), nullable=False, server_default=""),
    sa.Column("gpu_util_pct", sa.Double),  # its GPUs' mean utilisation over its run
    sa.Column("wasteful_at", sa.Double),  # when its GPUs were found idle past `waste_after`
    sa.Index("ix_jobs_state", "state"),
    sa.Index("ix_jobs_account", "account"),
    sa.Index("ix_jobs_finished_at", "finished_at"),
    sa.Index("ix_jobs_placed_at", "placed_at"),
)

job_output = sa.Table(  # the end of a job's output, from its end event (`dormouse jobs logs`)
    "job_output",
    Base.metadata,
    sa.Column("job_id", sa.String(64), primary_key=True),
    sa.Column("stdout_tail", sa.Text, nullable=False),
    sa.Column("stderr_tail", sa.Text, nullable=False),
    sa.Column("ended_at", sa.Double, nullable=False),
)

budget_events = sa.Table(  # an account's budget crossed 80 or 100 %: once per period
    "budget_events",
    Base.metadata,
    sa.Column("account", sa.String(64), primary_key=True),  # "": the fleet's budget
    sa.Column("period_start", sa.Double, primary_key=True),
    sa.Column("threshold_pct", sa.Integer, primary_key=True),
    sa.Column("ts", sa.Double, nullable=False),
    sa.Column("spent", sa.Double, nullable=False),
    sa.Column("budget", sa.Double, nullable=False),
)

job_events = sa.Table(
    "job_events",
    Base.metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("job_id", sa.String(64), nullable=False),
    sa.Column("ts", sa.Double, nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("node", NODE_NAME),
    sa.Column("detail", sa.String(1024), nullable=False),
    sa.Index("ix_job_events_job_id", "job_id"),
)

power_events = sa.Table(
    "power_events",
    Base.metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("ts", sa.Double, nullable=False),
    sa.Column("node", NODE_NAME, nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),  # sleep, asleep, wake, resumed, fail, ...
    sa.Column("reason", sa.String(512), nullable=False),
    sa.Column("value", sa.Double),  # resumed: seconds from the wake
    sa.Index("ix_power_events_ts", "ts"),
    sa.Index("ix_power_events_node_ts", "node", "ts"),
)

pick_cursors = sa.Table(  # round-robin: the node each strategy picked last
    "pick_cursors",
    Base.metadata,
    sa.Column("strategy", sa.String(32), primary_key=True),
    sa.Column("node", NODE_NAME, nullable=False),
    sa.Column("at", sa.Double, nullable=False),
)

affinity_traffic = sa.Table(  # the last affinity pick per node: it keeps the node from idling
    "affinity_traffic",
    Base.metadata,
    sa.Column("node", NODE_NAME, primary_key=True),
    sa.Column("at", sa.Double, nullable=False),
)

power_requests = sa.Table(
    "power_requests",
    Base.metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("ts", sa.Double, nullable=False),
    sa.Column("node", NODE_NAME, nullable=False),
    sa.Column("action", sa.String(16), nullable=False),  # sleep, wake, clear
    sa.Column("force", sa.Boolean, nullable=False),
    sa.Column("source", sa.String(64), nullable=False, server_default="operator"),
    sa.Column("done_at", sa.Double),
    sa.Column("outcome", sa.String(512)),
)

output_requests = sa.Table(  # `dormouse jobs logs`: a piece of a job's output, from its node
    "output_requests",
    Base.metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("ts", sa.Double, nullable=False),
    sa.Column("job_id", sa.String(64), nullable=False),
    sa.Column("node", NODE_NAME, nullable=False),
    sa.Column("stream", sa.String(8), nullable=False),
    sa.Column("offset", sa.BigInteger, nullable=False),  # negative: from the end
    sa.Column("sent_at", sa.Double),
    sa.Column("answered_at", sa.Double),
    sa.Column("output", sa.Text),
    sa.Column("output_offset", sa.BigInteger),
    sa.Column("output_next", sa.BigInteger),
    sa.Column("output_size", sa.BigInteger),
    sa.Column("detail", sa.String(1024)),
    sa.Index("ix_output_requests_ts", "ts"),
)

api_tokens = sa.Table(  # HTTP API bearer tokens: only a SHA-256 of each is kept
    "api_tokens",
    Base.metadata,
    sa.Column("id", sa.String(16), primary_key=True),
    sa.Column("digest", sa.String(64), nullable=False, unique=True),
    sa.Column("scope", sa.String(8), nullable=False),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
)

drains = sa.Table(  # an operator's `dormouse drain`: no new work on the node or one GPU
    "drains",
    Base.metadata,
    sa.Column("node", NODE_NAME, primary_key=True),
    sa.Column("gpu_index", sa.SmallInteger, primary_key=True),  # -1: the whole node
    sa.Column("reason", sa.String(256), nullable=False),
    sa.Column("since", sa.Double, nullable=False),
)

gpu_events = sa.Table(  # a GPU's health changed, or an operator drained or undrained
    "gpu_events",
    Base.metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("ts", sa.Double, nullable=False),
    sa.Column("node", NODE_NAME, nullable=False),
    sa.Column("gpu_index", sa.SmallInteger, nullable=False),  # -1: the whole node
    sa.Column("kind", sa.String(16), nullable=False),  # ok, degraded, failed, drain, undrain
    sa.Column("reason", sa.String(256), nullable=False),
    sa.Index("ix_gpu_events_ts", "ts"),
)

leadership = sa.Table(  # who runs placement, power and maintenance (one row), and its epoch
    "leadership",
    Base.metadata,
    sa.Column("one", sa.SmallInteger, primary_key=True),  # always 1
    sa.Column("epoch", sa.BigInteger, nullable=False),  # bumped at each takeover
    sa.Column("holder", sa.String(128), nullable=False),  # host:pid of the process
    sa.Column("since", sa.Double, nullable=False),
    sa.Column("renewed_at", sa.Double, nullable=False),  # the holder's last check of its lock
)

node_live = sa.Table(  # each node's newest batch as an ingest worker saw it: the leader's view
    "node_live",
    Base.metadata,
    sa.Column("node", NODE_NAME, primary_key=True),
    sa.Column("seen_at", sa.Double, nullable=False),  # when stored (PostgreSQL: server clock)
    sa.Column("seq", sa.BigInteger, nullable=False),  # the batch's last seq
    sa.Column("stream_first", sa.BigInteger, nullable=False),  # the agent's current spool
    sa.Column("latest", sa.JSON, nullable=False),  # `core.registry.summarise` of the batch
    sa.Index("ix_node_live_seen_at", "seen_at"),
)

node_forgets = sa.Table(  # `dormouse nodes forget`: every process drops the node from memory
    "node_forgets",
    Base.metadata,
    sa.Column("node", NODE_NAME, primary_key=True),
    sa.Column("asked_at", sa.Double, nullable=False),
    sa.Index("ix_node_forgets_asked_at", "asked_at"),
)

workers = sa.Table(  # every `dormouse run` process, and what it has stored
    "coordinator_workers",
    Base.metadata,
    sa.Column("id", sa.String(128), primary_key=True),  # host:pid
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("started_at", sa.Double, nullable=False),
    sa.Column("seen_at", sa.Double, nullable=False),
    sa.Column("figures", sa.JSON, nullable=False),  # samples_stored, duplicates, lag_p99_s...
)
