"""Bearer tokens on the API: who may read, who may write (pure, but for the lookup it is
given)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from coordinator.services.tokens import allows


@dataclass(frozen=True, slots=True)
class Refusal:
    status: int  # 401: no usable token; 403: a token without the scope
    error: str
    reason: str


def bearer(header: str | None) -> str | None:
    """The token of `Authorization: Bearer TOKEN`, or None."""
    if not header:
        return None
    kind, _, token = header.partition(" ")
    return token.strip() or None if kind.lower() == "bearer" else None


def check(
    header: str | None,
    needed: str | None,
    scope_of: Callable[[str], str | None],
    *,
    anonymous_read: bool,
) -> Refusal | None:
    """None when the request may go on; else why not. `scope_of` looks a token up."""
    if needed is None or (needed == "read" and anonymous_read):
        return None
    token = bearer(header)
    if token is None:
        why = "send Authorization: Bearer TOKEN (`dormouse token create --scope read|write`)"
        return Refusal(401, "unauthorized", why)
    held = scope_of(token)
    if held is None:
        return Refusal(401, "unauthorized", "unknown or revoked token")
    if not allows(held, needed):
        return Refusal(403, "forbidden", f"this token may {held} only; this needs {needed}")
    return None
