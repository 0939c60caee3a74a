"""Node rows: the registry's views, saved by the daemon and read by the CLI."""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa

from coordinator.core.nodestate import NodeState
from coordinator.core.registry import NodeView
from coordinator.store.dialect import upsert
from coordinator.store.drains import all_drains
from coordinator.store.models import Node, drains, node_forgets, node_live
from shared.messages import Hello

KEPT = {"name", "first_seen"}  # set by a node's first write only


def save_nodes(conn: sa.Connection, views: Iterable[NodeView]) -> None:
    rows = [
        {
            "name": v.name,
            "state": v.state,
            "state_since": v.state_since,
            "last_seen": v.last_seen,
            "latest": v.latest,
            "hostname": v.hello.hostname if v.hello else None,
            "agent_version": v.hello.agent_version if v.hello else None,
            "cpus": v.hello.cpus if v.hello else None,
            "mem_total_bytes": v.hello.mem_total_bytes if v.hello else None,
            "hello": v.hello.to_wire() if v.hello else None,
            "first_seen": v.last_seen or v.state_since,
        }
        for v in views
    ]
    if not rows:
        return
    table = Node.__table__
    statement = upsert(conn, table)  # type: ignore[arg-type]
    updated = {c: statement.excluded[c] for c in rows[0] if c not in KEPT}
    conn.execute(statement.on_conflict_do_update(index_elements=["name"], set_=updated), rows)


def first_seen(conn: sa.Connection) -> dict[str, float]:
    """When each node first appeared: its fixed costs run from then."""
    query = sa.select(Node.name, Node.first_seen).where(Node.first_seen.is_not(None))
    return {name: ts for name, ts in conn.execute(query) if ts is not None}


def load_nodes(conn: sa.Connection, name: str | None = None) -> list[NodeView]:
    """Every node in full, or only `name` (an empty list if it is not known)."""
    query = sa.select(Node.__table__).order_by("name")
    if name is not None:
        query = query.where(Node.name == name)
    views = []
    drained = all_drains(conn)
    for row in conn.execute(query).mappings():
        hello = Hello.from_wire(row["hello"]) if row["hello"] else None
        views.append(
            NodeView(
                name=row["name"],
                state=NodeState(row["state"]),
                state_since=row["state_since"],
                last_seen=row["last_seen"],
                hello=hello,
                latest=row["latest"] or {},
                drains=drained.get(row["name"], {}),
            )
        )
    return views


def load_summaries(conn: sa.Connection) -> list[NodeView]:
    """Every node without its hello (state and latest sample only): what a listing shows,
    without re-reading and re-checking each node's hello (most of `load_nodes`'s cost)."""
    table = Node.__table__
    columns = [table.c[name] for name in ("name", "state", "state_since", "last_seen", "latest")]
    drained = all_drains(conn)
    return [
        NodeView(
            name=name,
            state=NodeState(state),
            state_since=since,
            last_seen=seen,
            latest=latest or {},
            drains=drained.get(name, {}),
        )
        for name, state, since, seen, latest in conn.execute(sa.select(*columns).order_by("name"))
    ]


def states(conn: sa.Connection) -> dict[str, str]:
    """Every node's state alone: what the console's live view reads each second."""
    return dict(conn.execute(sa.select(Node.name, Node.state)).tuples().all())


def command_keys(conn: sa.Connection) -> dict[str, str | None]:
    """Each node's command key id, read out of its hello's JSON (not the whole hello)."""
    found = conn.execute(sa.select(Node.name, Node.hello["command_key"].as_string()))
    return {name: key for name, key in found}  # noqa: C416 - rows, not pairs, to mypy


def known_nodes(conn: sa.Connection) -> list[str]:
    return list(conn.execute(sa.select(Node.name).order_by(Node.name)).scalars())


def node_labels(conn: sa.Connection) -> dict[str, dict[str, str]]:
    """Every node's labels, from its hello (a node not heard from since has none)."""
    rows = conn.execute(sa.select(Node.name, Node.hello).order_by(Node.name))
    return {name: dict((hello or {}).get("labels") or {}) for name, hello in rows}


def forget(conn: sa.Connection, names: Iterable[str], asked_at: float) -> None:
    """Delete the nodes' rows (their live view and drains with them; their history stays
    until it expires) and leave a note every coordinator process reads to drop them from
    memory (`forgets_since`)."""
    names = list(names)
    if not names:
        return
    conn.execute(sa.delete(Node).where(Node.name.in_(names)))
    for table in (node_live, drains):
        conn.execute(sa.delete(table).where(table.c.node.in_(names)))
    notes = [{"node": n, "asked_at": asked_at} for n in names]
    conn.execute(upsert(conn, node_forgets).on_conflict_do_update(
        index_elements=["node"], set_={"asked_at": asked_at}), notes)  # fmt: skip


def forgets_since(conn: sa.Connection, since: float) -> list[tuple[str, float]]:
    """(node, when asked) of the forgets asked after `since`, oldest first."""
    query = sa.select(node_forgets.c.node, node_forgets.c.asked_at).where(
        node_forgets.c.asked_at > since
    )
    return [(n, at) for n, at in conn.execute(query.order_by(node_forgets.c.asked_at))]


def drop_rows(conn: sa.Connection, names: Iterable[str]) -> None:
    """The rows of nodes a process has just dropped from memory, deleted again: its last
    save may have written one back after the forget."""
    names = list(names)
    if names:
        conn.execute(sa.delete(Node).where(Node.name.in_(names)))


def purge_forgets(conn: sa.Connection, before: float) -> None:
    conn.execute(sa.delete(node_forgets).where(node_forgets.c.asked_at < before))
