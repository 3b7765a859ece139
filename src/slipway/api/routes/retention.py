"""Retention and legal hold: what is kept how long, the purge, and holds on models."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from slipway.access.authz import Permission, Principal
from slipway.api.auth import actor_of, require, runtime_of
from slipway.api.routes import PROTECTED, errors
from slipway.governance.statements import MAX_CHARS

router = APIRouter(prefix="/api/v1", tags=["retention"], responses=PROTECTED)


class Purge(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dry_run: bool = False


class HoldReason(BaseModel):
    """Why the hold is placed or lifted: required (the service names an empty one)."""

    model_config = ConfigDict(extra="forbid")
    reason: str = Field(max_length=MAX_CHARS)


@router.get("/retention")
async def retention_status(
    request: Request, _: Principal = Depends(require(Permission.RETENTION_RUN))
) -> dict[str, Any]:
    """The retention days per risk tier, how often the purge runs, and what a purge now
    would delete per model (and which held models it would skip)."""
    rt = runtime_of(request)
    plan = await run_in_threadpool(rt.retention.plan)
    return {**plan, "interval_s": rt.settings.retention_interval_s}


@router.post("/retention/purge", responses=errors(400))
async def purge(
    request: Request,
    body: Purge | None = None,
    _: Principal = Depends(require(Permission.RETENTION_RUN)),
) -> dict[str, Any]:
    """Purge what is past retention now (``dry_run``: only report it). A purge that
    deletes anything is audited as one ``retention.purge`` event."""
    rt = runtime_of(request)
    if body is not None and body.dry_run:
        return await run_in_threadpool(rt.retention.plan)
    return await run_in_threadpool(rt.retention.purge, actor=actor_of(request))


@router.post("/models/{name}/hold", responses=errors(400, 404, 409))
async def hold_model(
    name: str,
    body: HoldReason,
    request: Request,
    _: Principal = Depends(require(Permission.MODEL_HOLD)),
) -> dict[str, Any]:
    """Put the model under legal hold: retention purges nothing of it until released."""
    model = await run_in_threadpool(
        runtime_of(request).retention.hold, name, body.reason, actor=actor_of(request)
    )
    return model.to_dict()


@router.post("/models/{name}/release", responses=errors(400, 404, 409))
async def release_model(
    name: str,
    body: HoldReason,
    request: Request,
    _: Principal = Depends(require(Permission.MODEL_HOLD)),
) -> dict[str, Any]:
    """Lift the model's legal hold; the next purge applies retention to it again."""
    model = await run_in_threadpool(
        runtime_of(request).retention.release, name, body.reason, actor=actor_of(request)
    )
    return model.to_dict()
