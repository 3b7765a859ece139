"""Quarantined rows: list, show, export (JSONL) and replay through the endpoint."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

import msgspec
from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.responses import StreamingResponse

from slipway.access.authz import Permission, Principal
from slipway.api.auth import actor_of, authorize_target, require, runtime_of
from slipway.api.errors import request_id_of
from slipway.api.routes import PROTECTED, errors
from slipway.errors import ContractViolation

router = APIRouter(prefix="/api/v1", tags=["quarantine"], responses=PROTECTED)


class Replay(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ids: list[str] | None = Field(default=None, max_length=10_000)
    limit: int = Field(default=1000, ge=1, le=10_000)


@router.get("/endpoints/{endpoint}/quarantine")
async def list_quarantine(
    endpoint: str,
    request: Request,
    status: Literal["open", "resolved"] | None = None,
    limit: int = Query(default=100, ge=1, le=1000),
    after: str = Query(default="", max_length=32),
    _: Principal = Depends(require(Permission.QUARANTINE_READ)),
) -> dict[str, Any]:
    runtime = runtime_of(request)
    return await run_in_threadpool(
        runtime.quarantine.list, endpoint, status=status, limit=limit, after=after
    )


@router.get(
    "/endpoints/{endpoint}/quarantine/export",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/x-ndjson": {}}, "description": "JSONL"}},
)
async def export_quarantine(
    endpoint: str,
    request: Request,
    status: Literal["open", "resolved"] | None = None,
    _: Principal = Depends(require(Permission.QUARANTINE_READ)),
) -> StreamingResponse:
    service = runtime_of(request).quarantine

    def lines() -> Iterator[bytes]:
        for row in service.iter_all(endpoint, status):
            yield msgspec.json.encode(row) + b"\n"

    return StreamingResponse(lines(), media_type="application/x-ndjson")


@router.get("/quarantine/{quarantine_id}", responses=errors(404))
async def show_quarantined(
    quarantine_id: str,
    request: Request,
    principal: Principal = Depends(require(Permission.QUARANTINE_READ)),
) -> dict[str, Any]:
    row = await run_in_threadpool(runtime_of(request).quarantine.get, quarantine_id)
    await authorize_target(request, principal, Permission.QUARANTINE_READ, row["endpoint"])
    return row


@router.post("/endpoints/{endpoint}/quarantine/replay", responses=errors(400, 404, 503))
async def replay_quarantine(
    endpoint: str,
    request: Request,
    body: Replay | None = None,
    principal: Principal = Depends(require(Permission.QUARANTINE_REPLAY)),
) -> dict[str, Any]:
    """Send open quarantined rows through the endpoint's current version again; rows that
    now pass are predicted (with prediction records) and marked resolved."""
    runtime = runtime_of(request)
    options = body or Replay()
    pending = await run_in_threadpool(
        runtime.quarantine.open_rows, endpoint, options.ids, options.limit
    )
    if not pending:
        return {
            "endpoint": endpoint,
            "replayed": 0,
            "resolved": 0,
            "still_failing": 0,
            "results": [],
        }
    ids = [qid for qid, _ in pending]
    rows = [row for _, row in pending]
    outcomes: list[tuple[str, str | None, list[dict[str, Any]] | None]] = []
    version = None
    try:
        result = await runtime.inference.predict(
            endpoint,
            rows,
            caller=principal.token_id or principal.name,
            route="replay",
            request_id=request_id_of(request),
            mode="partial",
            quarantine=False,
        )
        version = result.version
        for index, pid in zip(result.row_index, result.prediction_ids(), strict=True):
            outcomes.append((ids[index], pid, None))
        for index, refused in result.refused.items():
            outcomes.append((ids[index], None, refused["errors"]))
    except ContractViolation as exc:  # no row passes yet
        by_row: dict[int, list[dict[str, Any]]] = {}
        for detail in exc.details:
            by_row.setdefault(detail["row"], []).append(
                {"field": detail["field"], "reason": detail["reason"]}
            )
        outcomes = [(ids[i], None, reasons) for i, reasons in sorted(by_row.items())]
    resolved = await run_in_threadpool(
        runtime.quarantine.mark,
        outcomes,
        actor=actor_of(request),
        endpoint=endpoint,
        version=version,
    )
    return {
        "endpoint": endpoint,
        "version": version,
        "replayed": len(outcomes),
        "resolved": resolved,
        "still_failing": len(outcomes) - resolved,
        "results": [
            {"quarantine_id": qid, "prediction_id": pid, "errors": reasons}
            for qid, pid, reasons in outcomes
        ],
    }
