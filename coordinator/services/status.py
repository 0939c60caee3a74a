"""`dormouse status --json` and `GET /api/v1/status`: one document with the same keys, so
a script may read either. Times are epoch seconds."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from coordinator.services import jobs as jobs_service
from coordinator.services import nodes as node_service

WORKER_FIGURES = ("samples_stored", "duplicates", "samples_buffered", "lag_p99_s")


def document(
    engine: sa.Engine, key_file: Path, lease_s: float = 10.0, now: float | None = None
) -> dict[str, Any]:
    """The coordinator's figures as it last wrote them (each with when), the store's size
    in all and by tier, why jobs are not placed (None when they are), the leading process
    and every process heard from lately. A leader that has not renewed its lead for three
    leases (it checks every third of one) is dead: `leader` is None, `last_leader` says who
    it was."""
    found = node_service.status(engine)
    leader = found.leader
    now = time.time() if now is None else now
    silent = leader is not None and now - leader.renewed_at > 3 * lease_s
    last = None
    if silent:
        last, leader = leader, None
    return {
        "figures": {k: {"value": v, "updated": at} for k, (v, at) in sorted(found.figures.items())},
        "store_bytes": found.store_bytes,
        **(found.tier_bytes or {}),
        "placement_held": jobs_service.placement_held(engine, key_file),
        "leader": None
        if leader is None
        else {
            "id": leader.holder,
            "epoch": leader.epoch,
            "since": leader.since,
            "renewed_at": leader.renewed_at,
        },
        "last_leader": None
        if last is None
        else {"id": last.holder, "epoch": last.epoch, "renewed_at": last.renewed_at},
        "workers": [
            {
                "id": w.id,
                "role": w.role,
                "started_at": w.started_at,
                "seen_at": w.seen_at,
                **{k: w.figures.get(k, 0.0) for k in WORKER_FIGURES},
            }
            for w in found.workers
        ],
    }
