"""/api/v1/audit: list, export (JSONL) and verify the audit log."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from slipway.access.authz import Permission, Principal
from slipway.api.auth import require, runtime_of
from slipway.api.routes import MAX_INT64, PROTECTED
from slipway.audit.query import iter_events, list_events
from slipway.audit.verify import verify
from slipway.errors import ValidationFailed

router = APIRouter(prefix="/api/v1/audit", tags=["audit"], responses=PROTECTED)

MAX_LIMIT = 1000


@dataclass(frozen=True)
class AuditFilters:
    actor: str | None
    target: str | None
    action: str | None
    since: datetime | None
    until: datetime | None
    after_seq: int

    def as_kwargs(self) -> dict[str, Any]:
        return dict(vars(self))


def _time(name: str, value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        # "Z" is what most clients send; fromisoformat accepts it from Python 3.11 on.
        return datetime.fromisoformat(value)
    except ValueError:
        raise ValidationFailed.field(name, f"not an ISO 8601 time: {value[:64]!r}") from None


def audit_filters(
    actor: str | None = Query(None, description="Events by this principal."),
    target: str | None = Query(None, description="Events on this target (model, endpoint...)."),
    action: str | None = Query(None, description="Events of this action, e.g. token.revoke."),
    since: str | None = Query(None, description="From this UTC time (ISO 8601), inclusive."),
    until: str | None = Query(None, description="Before this UTC time (ISO 8601)."),
    after_seq: int = Query(
        0, ge=0, le=MAX_INT64, description="Only events after this sequence number."
    ),
) -> AuditFilters:
    return AuditFilters(
        actor=actor,
        target=target,
        action=action,
        since=_time("since", since),
        until=_time("until", until),
        after_seq=after_seq,
    )


@router.get("/events")
async def events(
    request: Request,
    filters: AuditFilters = Depends(audit_filters),
    limit: int = Query(100, ge=1, le=MAX_LIMIT),
    _: Principal = Depends(require(Permission.AUDIT_READ)),
) -> dict[str, Any]:
    engine = runtime_of(request).engine
    found = await run_in_threadpool(list_events, engine, limit=limit, **filters.as_kwargs())
    return {"events": found}


@router.get(
    "/export",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/x-ndjson": {}}, "description": "JSONL"}},
)
async def export(
    request: Request,
    filters: AuditFilters = Depends(audit_filters),
    _: Principal = Depends(require(Permission.AUDIT_READ)),
) -> StreamingResponse:
    engine = runtime_of(request).engine

    def lines() -> Iterator[str]:
        # A sync generator: Starlette runs it in a thread, a page of events at a time.
        for event in iter_events(engine, **filters.as_kwargs()):
            yield json.dumps(event, separators=(",", ":"), ensure_ascii=False) + "\n"

    return StreamingResponse(lines(), media_type="application/x-ndjson")


@router.get("/verify")
async def verify_log(
    request: Request, _: Principal = Depends(require(Permission.AUDIT_READ))
) -> dict[str, Any]:
    runtime = runtime_of(request)
    report = await run_in_threadpool(verify, runtime.engine, runtime.settings.resolved_audit_dir)
    return report.to_dict()
