"""HTTP API tokens (`dormouse token create | list | revoke`, and the API's auth check).

A token is 32 random bytes, shown once when created; the store keeps only its SHA-256, so a
copy of the database gives no access. A plain hash (no salt, no stretching) is enough for
random secrets of that length: nothing is left to guess by brute force.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from coordinator.store import tokens as token_rows
from shared.errors import DormouseError

SCOPES = ("read", "write")  # write implies read
PREFIX = "dm_"


class TokenError(DormouseError):
    """A token request that cannot be done; the message says why."""


@dataclass(frozen=True, slots=True)
class Created:
    id: str
    scope: str
    token: str


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def allows(held: str, needed: str) -> bool:
    """Write tokens may read; read tokens may only read."""
    return held in {"write", needed}


def create(engine: sa.Engine, scope: str, name: str, now: float) -> Created:
    if scope not in SCOPES:
        raise TokenError(f"--scope {scope!r}: expected read or write")
    if len(name) > 64:
        raise TokenError("--name: at most 64 characters")
    token = PREFIX + secrets.token_urlsafe(32)
    token_id = secrets.token_hex(6)
    row = {"id": token_id, "digest": digest(token), "scope": scope, "name": name}
    with engine.begin() as conn:
        token_rows.insert(conn, row | {"created_at": now})
    return Created(token_id, scope, token)


def holder(engine: sa.Engine, token: str) -> tuple[str, str] | None:
    """The token's (scope, name), or None for one that was never issued or was revoked:
    the name is the user the API charges a submitted job to."""
    with engine.connect() as conn:
        return token_rows.holder(conn, digest(token))


def listing(engine: sa.Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return token_rows.listing(conn)


def revoke(engine: sa.Engine, token_id: str) -> None:
    with engine.begin() as conn:
        if not token_rows.delete(conn, token_id):
            raise TokenError(f"no token {token_id!r} (see `dormouse token list`)")
