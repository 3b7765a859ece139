"""/api/v1/models: the model inventory."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from slipway.access.authz import Permission, Principal
from slipway.api.auth import actor_of, authorize_target, require, runtime_of
from slipway.api.routes import PROTECTED, errors
from slipway.registry.models import RISK_TIERS

router = APIRouter(prefix="/api/v1/models", tags=["models"], responses=PROTECTED)
DEFAULT_RISK_TIER = "medium"


async def _may_set_risk_tier(
    request: Request, principal: Principal, new: str | None, current: str
) -> None:
    """A lower risk tier needs fewer approvals and keeps records for less time: only
    whoever may write policies (admins) may lower one; anyone who may write the model
    may raise it."""
    if new is not None and RISK_TIERS.index(new) < RISK_TIERS.index(current):
        await authorize_target(request, principal, Permission.POLICY_MANAGE, None)


class ModelCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=64)
    owner: str = Field(min_length=1, max_length=256)
    description: str = ""
    oncall: str = ""
    runbook_url: str = ""
    risk_tier: Literal["low", "medium", "high"] = "medium"
    intended_use: str = ""
    limitations: str = ""
    tags: list[str] = []


class ModelUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    owner: str | None = Field(default=None, min_length=1, max_length=256)
    description: str | None = None
    oncall: str | None = None
    runbook_url: str | None = None
    risk_tier: Literal["low", "medium", "high"] | None = None
    intended_use: str | None = None
    limitations: str | None = None
    tags: list[str] | None = None
    status: Literal["active", "deprecated"] | None = None


@router.post("", status_code=201, responses=errors(400, 409))
async def create_model(
    body: ModelCreate,
    request: Request,
    principal: Principal = Depends(require(Permission.MODEL_WRITE)),
) -> dict[str, Any]:
    fields = body.model_dump()
    await _may_set_risk_tier(request, principal, body.risk_tier, DEFAULT_RISK_TIER)
    model = await run_in_threadpool(
        runtime_of(request).models.create, actor=actor_of(request), **fields
    )
    return model.to_dict()


@router.get("")
async def list_models(
    request: Request,
    name: str | None = None,
    tag: str | None = None,
    owner: str | None = None,
    status: str | None = None,
    _: Principal = Depends(require(Permission.MODEL_READ)),
) -> dict[str, Any]:
    found = await run_in_threadpool(
        runtime_of(request).models.list, name=name, tag=tag, owner=owner, status=status
    )
    return {"models": [m.to_dict() for m in found]}


@router.get("/{name}", responses=errors(404))
async def show_model(
    name: str, request: Request, _: Principal = Depends(require(Permission.MODEL_READ))
) -> dict[str, Any]:
    runtime = runtime_of(request)
    model = await run_in_threadpool(runtime.models.get, name)
    versions = await run_in_threadpool(runtime.versions.list, name)
    return {**model.to_dict(), "versions": [v.to_dict() for v in versions]}


@router.patch("/{name}", responses=errors(400, 404, 409))
async def update_model(
    name: str,
    body: ModelUpdate,
    request: Request,
    principal: Principal = Depends(require(Permission.MODEL_WRITE)),
) -> dict[str, Any]:
    fields = body.model_dump(exclude_none=True)
    if body.risk_tier is not None:
        current = await run_in_threadpool(runtime_of(request).models.get, name)
        await _may_set_risk_tier(request, principal, body.risk_tier, current.risk_tier)
    model = await run_in_threadpool(
        runtime_of(request).models.update, name, actor=actor_of(request), **fields
    )
    return model.to_dict()


@router.post("/{name}/retire", responses=errors(404, 409))
async def retire_model(
    name: str, request: Request, principal: Principal = Depends(require(Permission.MODEL_WRITE))
) -> dict[str, Any]:
    model = await run_in_threadpool(
        runtime_of(request).models.retire, name, actor=actor_of(request)
    )
    return model.to_dict()
