"""Appending to the hash-chained audit log, inside the caller's transaction.

Each event's hash covers the previous hash and the event's canonical JSON::

    h_0 = "0" * 64
    h_i = SHA-256(h_{i-1} as ASCII hex || canonical_json(event_i))

``append`` must run in the same write transaction as the change it records (``store.
transaction``), so there is no change without its event and no event without its change.
Appends are serialized by locking the one-row ``audit_head`` table.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from slipway.ids import new_id, utcnow
from slipway.metrics import AUDIT_EVENTS
from slipway.store.tables import audit_events, audit_head

GENESIS = "0" * 64

# The fields an event's hash covers, in this order (the canonical form sorts keys anyway;
# the tuple documents what is covered and what is not: prev_hash and hash themselves).
HASHED_FIELDS = (
    "seq",
    "id",
    "created_at",
    "actor",
    "token_id",
    "action",
    "target_kind",
    "target",
    "before",
    "after",
    "reason",
    "request_id",
)


@dataclass(frozen=True)
class Actor:
    """Who performs a control action: a principal (by name and token id), or ``system``."""

    name: str
    token_id: str | None = None
    request_id: str = ""


SYSTEM = Actor("system")


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8; datetimes as ISO 8601 (UTC)."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_default
    ).encode()


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot put {type(value).__name__} in an audit event")


def event_hash(prev_hash: str, event: dict[str, Any]) -> str:
    body = {key: event.get(key) for key in HASHED_FIELDS}
    return hashlib.sha256(prev_hash.encode("ascii") + canonical_json(body)).hexdigest()


def append(
    conn: Connection,
    actor: Actor,
    action: str,
    *,
    target_kind: str,
    target: str,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    reason: str = "",
) -> dict[str, Any]:
    """Append one event in ``conn``'s transaction and return it (with seq and hash)."""
    head = conn.execute(
        select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1).with_for_update()
    ).one()
    event: dict[str, Any] = {
        "seq": int(head.seq) + 1,
        "id": new_id(),
        # Microseconds dropped: what is hashed must equal what every backend reads back.
        "created_at": utcnow().replace(microsecond=0),
        "actor": actor.name,
        "token_id": actor.token_id,
        "action": action,
        "target_kind": target_kind,
        "target": target,
        "before": _jsonable(before),
        "after": _jsonable(after),
        "reason": reason,
        "request_id": actor.request_id,
    }
    event["prev_hash"] = head.hash
    event["hash"] = event_hash(head.hash, event)
    conn.execute(audit_events.insert().values(**event))
    AUDIT_EVENTS.labels(action=action).inc()
    conn.execute(
        audit_head.update().where(audit_head.c.id == 1).values(seq=event["seq"], hash=event["hash"])
    )
    return event


def _jsonable(value: dict[str, Any] | None) -> dict[str, Any] | None:
    """Round-trip through JSON so what is hashed is exactly what the store returns."""
    if value is None:
        return None
    loaded: dict[str, Any] = json.loads(canonical_json(value))
    return loaded
