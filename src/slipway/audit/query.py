"""Reading the audit log: filtered listing, and a paged iterator for export (JSONL)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, Select, select

from slipway.store.tables import audit_events

EXPORT_PAGE = 1000


def list_events(
    engine: Engine,
    *,
    actor: str | None = None,
    target: str | None = None,
    action: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    after_seq: int = 0,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Events matching every given filter, oldest first, as JSON-ready dicts.

    ``since`` is inclusive and ``until`` exclusive (UTC; naive times are taken as UTC);
    page with ``after_seq`` = the last seq of the previous page.
    """
    query = _filtered(actor, target, action, since, until).where(audit_events.c.seq > after_seq)
    with engine.connect() as conn:
        rows = conn.execute(query.order_by(audit_events.c.seq).limit(limit)).mappings()
        return [_jsonable(dict(row)) for row in rows]


def iter_events(
    engine: Engine,
    *,
    actor: str | None = None,
    target: str | None = None,
    action: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    after_seq: int = 0,
    limit: int | None = None,
) -> Iterator[dict[str, Any]]:
    """Every matching event (up to ``limit``), fetched a page at a time."""
    sent = 0
    while limit is None or sent < limit:
        page_size = EXPORT_PAGE if limit is None else min(EXPORT_PAGE, limit - sent)
        page = list_events(
            engine,
            actor=actor,
            target=target,
            action=action,
            since=since,
            until=until,
            after_seq=after_seq,
            limit=page_size,
        )
        yield from page
        sent += len(page)
        if len(page) < page_size:
            return
        after_seq = page[-1]["seq"]


def _filtered(
    actor: str | None,
    target: str | None,
    action: str | None,
    since: datetime | None,
    until: datetime | None,
) -> Select[Any]:
    query = select(audit_events)
    if actor:
        query = query.where(audit_events.c.actor == actor)
    if target:
        query = query.where(audit_events.c.target == target)
    if action:
        query = query.where(audit_events.c.action == action)
    if since is not None:
        query = query.where(audit_events.c.created_at >= _utc(since))
    if until is not None:
        query = query.where(audit_events.c.created_at < _utc(until))
    return query


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _jsonable(event: dict[str, Any]) -> dict[str, Any]:
    event["created_at"] = event["created_at"].isoformat()
    return event
