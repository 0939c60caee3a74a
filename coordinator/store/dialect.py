"""What differs between SQLite and PostgreSQL, in one place."""

from __future__ import annotations

import json
import operator
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite


def upsert(conn: sa.Connection, table: sa.Table) -> Any:
    """An INSERT that can do nothing or update on conflict, on either engine."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


def as_json_text(value: Any) -> str:
    """JSON for a COPY cell. A vector of floats (a sample's per-core figures, checked finite
    by the codec) is joined from `float.__repr__` (valid JSON for finite floats), a few
    times quicker than `json.dumps`; anything else goes through `json.dumps`."""
    if type(value) in (tuple, list):
        try:
            return f"[{','.join(map(float.__repr__, value))}]"
        except TypeError:  # not all floats
            pass
    return json.dumps(value)


def insert_new(conn: sa.Connection, table: sa.Table, rows: Sequence[dict[str, Any]]) -> int:
    """Insert `rows`, skipping any whose primary key is stored already (or repeated among
    them): exact dedupe on either engine; returns the rows inserted. On PostgreSQL the rows
    go in with COPY, to a temporary table, then one `INSERT ... SELECT ... ON CONFLICT DO
    NOTHING`: about twice the rate of a pipelined executemany (`docs/benchmarks.md`, "Bulk
    writes")."""
    if not rows:
        return 0
    if conn.dialect.name != "postgresql":
        return int(conn.execute(upsert(conn, table).on_conflict_do_nothing(), rows).rowcount)
    columns = list(rows[0])
    json_columns = {c.name for c in table.columns if isinstance(c.type, sa.JSON)}
    names = ", ".join(f'"{c}"' for c in columns)
    staging = f"staging_{table.name}"
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    with cursor:
        cursor.execute(
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {staging} "
            f"(LIKE {table.name} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        )
        values = operator.itemgetter(*columns)
        as_json = [i for i, c in enumerate(columns) if c in json_columns]
        with cursor.copy(f"COPY {staging} ({names}) FROM STDIN") as copy:
            for row in rows:
                cells = list(values(row)) if len(columns) > 1 else [values(row)]
                for i in as_json:
                    if cells[i] is not None:
                        cells[i] = as_json_text(cells[i])
                copy.write_row(cells)
        cursor.execute(
            f"INSERT INTO {table.name} ({names}) SELECT {names} FROM {staging} "  # noqa: S608 - names from the table's own columns
            "ON CONFLICT DO NOTHING"
        )
        inserted = cursor.rowcount
        cursor.execute(f"TRUNCATE {staging}")
    return inserted
