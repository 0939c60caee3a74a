"""Decoded samples through SQLAlchemy into a SQLite file and into PostgreSQL, and back."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from shared.codec import decode, encode
from shared.topics import Kind
from tests import factories


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.pg)])
def engine(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'roundtrip.db'}"
    else:
        url = request.getfixturevalue("pg_url")
    engine = sa.create_engine(url)
    yield engine
    engine.dispose()


def samples_table() -> sa.Table:
    return sa.Table(
        f"roundtrip_{uuid.uuid4().hex[:12]}",
        sa.MetaData(),
        sa.Column("node", sa.String(64), primary_key=True),
        sa.Column("seq", sa.BigInteger, primary_key=True),
        sa.Column("ts", sa.Float(precision=53), nullable=False),
        sa.Column("cpu_util_pct", sa.Float(precision=53)),
        sa.Column("power_w", sa.Float(precision=53)),
        sa.Column("payload", sa.LargeBinary, nullable=False),
    )


def test_samples_round_trip_and_seq_is_unique(engine):
    batch = factories.telemetry(node="gpu-01", seq_first=2**40, count=3)
    payload = encode(batch)
    received = decode(payload, Kind.TELEMETRY, "gpu-01")
    rows = [
        {
            "node": received.node,
            "seq": received.seq_first + i,
            "ts": s.ts,
            "cpu_util_pct": s.metrics["cpu_util_pct"],
            "power_w": s.metrics["power_w"],
            "payload": payload,
        }
        for i, s in enumerate(received.samples)
    ]
    table = samples_table()
    table.create(engine)
    try:
        with engine.begin() as conn:
            conn.execute(table.insert(), rows)
        with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
            conn.execute(table.insert(), rows[:1])  # redelivery: refused by (node, seq)
        with engine.connect() as conn:
            stored = conn.execute(sa.select(table).order_by(table.c.seq)).mappings().all()
        assert [dict(r) for r in stored] == rows
        assert stored[1]["power_w"] is None
        assert decode(bytes(stored[0]["payload"]), Kind.TELEMETRY, "gpu-01") == batch
    finally:
        table.drop(engine)
